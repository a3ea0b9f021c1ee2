"""SpyCloud's endpoints over the transport, parsed at the boundary.

Each method makes the calls of one endpoint and returns checked values
(`records.py`) and plain facts (how many records were unusable, whether the
page cap stopped the paging); the lookup decides what the analyst is told.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .budget import Budget
from .errors import SpyCloudError
from .records import (
    Catalog, PayloadError, Page, Record, parse_catalog, parse_page,
    parse_record,
)
from .transport import Transport

log = logging.getLogger(__name__)

HEALTH_PATH = "watchlist/example.org"
CATALOG_BATCH = 10  # ids per catalog call: SpyCloud documents no limit


@dataclass(frozen=True)
class RecordPage:
    """The usable records of one page, and what else the page told."""

    records: tuple[Record, ...]
    rejected: int  # records on the page that could not be parsed
    capped: bool  # this is the last page read, and SpyCloud holds more


class SpyCloud:
    """The enterprise-v2 endpoints the relay calls."""

    def __init__(self, transport: Transport, max_pages: int) -> None:
        self.transport = transport
        self.max_pages = max_pages

    def ping(self, key: str, budget: Budget) -> None:
        """Make one authenticated call, as the health check does."""
        self.transport.get_json(key, HEALTH_PATH, budget)

    def record_pages(
        self, key: str, selector: str, value: str, budget: Budget
    ) -> Iterator[RecordPage]:
        """Yield the pages of `breach/data/<selector>/<value>` one at a
        time, following the cursor up to the page cap."""
        path = f"breach/data/{selector}/" + quote(value, safe="@")
        cursor = ""
        seen: set[str] = set()
        for number in range(1, self.max_pages + 1):
            payload = self.transport.get_json(
                key, path, budget, {"cursor": cursor} if cursor else None
            )
            if payload is None:  # 400: an identifier SpyCloud won't search
                return
            page = _page(payload)
            cursor = page.cursor
            if cursor in seen:
                log.warning("SpyCloud repeated a cursor; paging stopped")
                cursor = ""
            seen.add(cursor)
            records, rejected = _records(page)
            yield RecordPage(
                records, rejected, capped=bool(cursor) and number == self.max_pages
            )
            if not cursor:
                return

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


def _records(page: Page) -> tuple[tuple[Record, ...], int]:
    records = []
    rejected = 0
    for raw in page.results:
        try:
            records.append(parse_record(raw))
        except ValueError as exc:
            rejected += 1
            log.warning("unusable record skipped: %s", exc)
    return tuple(records), rejected
