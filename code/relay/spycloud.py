"""SpyCloud's endpoints over the transport, parsed at the boundary.

Each method makes the calls of one endpoint and returns checked values
(`records.py`) and plain facts (how many records were unusable, whether the
page cap stopped the paging); the lookup decides what the analyst is told.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .budget import Budget
from .errors import SpyCloudError
from .records import (
    Catalog, Newest, PayloadError, Page, Record, RecordFilter, parse_catalog,
    parse_page, parse_record,
)
from .transport import Transport

log = logging.getLogger(__name__)

HEALTH_PATH = "watchlist/example.org"
CATALOG_BATCH = 10  # ids per catalog call: SpyCloud documents no limit
EVERY_RECORD = RecordFilter()


@dataclass(frozen=True)
class Records:
    """The newest records of one identifier, and what else SpyCloud told."""

    records: list[Record]  # newest first, at most the limit asked for
    rejected: int  # records that could not be parsed
    capped: bool  # the page cap stopped the paging: SpyCloud holds more


class SpyCloud:
    """The enterprise-v2 endpoints the relay calls."""

    def __init__(self, transport: Transport, max_pages: int) -> None:
        self.transport = transport
        self.max_pages = max_pages

    def ping(self, key: str, budget: Budget) -> None:
        """Make one authenticated call, as the health check does."""
        self.transport.get_json(key, HEALTH_PATH, budget)

    def records(
        self, key: str, selector: str, value: str, budget: Budget, limit: int,
        only: RecordFilter = EVERY_RECORD,
    ) -> Records:
        """Read `breach/data/<selector>/<value>`, every page up to the page
        cap, keeping only the newest *limit* records that pass *only* as
        pages arrive. Its first day is sent to SpyCloud as `since`."""
        path = f"breach/data/{selector}/" + quote(value, safe="@")
        newest = Newest(limit)
        since = {"since": only.since.isoformat()} if only.since else {}
        cursor = ""
        seen: set[str] = set()
        rejected = 0
        for _ in range(self.max_pages):
            answer = self.transport.get_json(
                key, path, budget,
                {**since, "cursor": cursor} if cursor else since or None,
                parse=lambda payload: _fold(_page(payload), newest, only),
            )
            if answer is None:  # 400: an identifier SpyCloud won't search
                cursor = ""
                break
            cursor, unusable = answer
            rejected += unusable
            if cursor in seen:
                log.warning("SpyCloud repeated a cursor; paging stopped")
                cursor = ""
            seen.add(cursor)
            if not cursor:
                break
        return Records(newest.records(), rejected, capped=bool(cursor))

    def catalog_batch(
        self, key: str, ids: Sequence[int], budget: Budget
    ) -> dict[int, Catalog]:
        """Return the catalogs SpyCloud has among *ids* (at most 10)."""
        path = "breach/catalog/" + ",".join(str(i) for i in ids)
        payload = self.transport.get_json(key, path, budget)
        found: dict[int, Catalog] = {}
        for raw in _page(payload).results if payload is not None else ():
            try:
                catalog = parse_catalog(raw)
            except ValueError as exc:
                log.warning("unusable catalog skipped: %s", exc)
                continue
            if catalog.id in ids:
                found[catalog.id] = catalog
        return found


def _page(payload: Any) -> Page:
    try:
        return parse_page(payload)
    except PayloadError as exc:
        raise SpyCloudError(
            f"SpyCloud answered with an unexpected body: {exc}."
        ) from exc


def _fold(page: Page, newest: Newest, only: RecordFilter) -> tuple[str, int]:
    """Offer a page's records to *newest*; return the page's cursor and how
    many records were unusable. Records too old to be kept are checked but
    never built, and the page is dropped once read."""
    rejected = 0
    for raw in page.results:
        try:
            record = parse_record(raw, newest.wants)
        except ValueError as exc:
            rejected += 1
            log.warning("unusable record skipped: %s", exc)
            continue
        if record is not None and only.admits(record):
            newest.add((record,))
    return page.cursor, rejected
