"""SpyCloud's endpoints over the transport, parsed at the boundary.

Each method makes the calls of one endpoint and returns checked values
(`records.py`) and plain facts (how many records were unusable, whether the
page cap stopped the paging); the lookup decides what the analyst is told.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .context import Context
from .errors import SpyCloudError
from .limits import Kept
from .records import (
    Catalog, Newest, PayloadError, Page, Record, RecordFilter, parse_catalog,
    parse_page, parse_record,
)
from .transport import Transport

log = logging.getLogger(__name__)

HEALTH_PATH = "watchlist/example.org"
# The path segment of each observable type's records.
SELECTORS = {"email": "emails", "user": "usernames", "ip": "ips",
             "ipv6": "ips", "domain": "domains"}
CATALOG_BATCH = 10  # ids per catalog call: SpyCloud documents no limit
EVERY_RECORD = RecordFilter()


@dataclass(frozen=True)
class Records:
    """The newest records of one identifier, and what else SpyCloud told."""

    records: list[Record]  # newest first, at most the limit asked for
    matched: int  # records read that passed the filter, kept or not
    rejected: int  # records that could not be parsed
    capped: bool  # the page cap stopped the paging: SpyCloud holds more
    read: int = 0  # distinct records read, whatever the filter said
    hits: int | None = None  # SpyCloud's total, as its first page said
    pages: int = 0  # the page cap that applied


class SpyCloud:
    """The enterprise-v2 endpoints the relay calls."""

    def __init__(self, transport: Transport, max_pages: int,
                 domain_max_pages: int | None = None) -> None:
        self.transport = transport
        self.max_pages = max_pages
        self.domain_max_pages = domain_max_pages or max_pages

    def pages(self, kind: str) -> int:
        """The most pages read for one observable of *kind*."""
        return self.domain_max_pages if kind == "domain" else self.max_pages

    def ping(self, ctx: Context) -> None:
        """Make one authenticated call, as the health check does."""
        self.transport.get_json(ctx, HEALTH_PATH, endpoint="watchlist")

    def records(
        self, ctx: Context, kind: str, value: str, limit: int,
        only: RecordFilter = EVERY_RECORD, kept: Kept | None = None,
    ) -> Records:
        """Read the records of the observable (*kind*, *value*) (e.g.
        `breach/data/emails/<value>`), every page up to the page cap,
        keeping only the newest *limit* records that pass *only* as pages
        arrive. Its first day is sent to SpyCloud as `since`. With *kept*,
        the pages share one slot of the key's cap, kept afterwards for the
        caller's next call."""
        newest = Newest(limit)

        def offer(raw: Any) -> None:
            record = parse_record(raw, newest.wants)
            if record is not None and only.admits(record):
                newest.add((record,))

        paging, pages = Paging(), self.pages(kind)
        rejected, capped = self._pages(
            ctx, f"breach/data/{SELECTORS[kind]}", quote(value, safe="@"),
            {"since": only.since.isoformat()} if only.since else {},
            pages, offer, kept, paging)
        return Records(newest.records(), newest.seen, rejected, capped,
                       len(paging.documents) + paging.unnamed, paging.hits,
                       pages)

    def watchlist(
        self, ctx: Context, since: dt.date, max_pages: int,
        take: Callable[[Record], None],
    ) -> tuple[int, bool]:
        """Hand every record of `breach/data/watchlist` published since
        *since* to *take*, page by page up to *max_pages*; return how many
        were unusable and whether the page cap stopped the reading."""
        def offer(raw: Any) -> None:
            record = parse_record(raw)
            if record is not None:
                take(record)

        kept = Kept()
        try:
            return self._pages(ctx, "breach/data/watchlist", "",
                               {"since": since.isoformat()}, max_pages, offer,
                               kept)
        finally:
            kept.give_back()

    def _pages(
        self, ctx: Context, endpoint: str, segment: str,
        params: dict[str, str], max_pages: int,
        offer: Callable[[Any], None], kept: Kept | None,
        paging: Paging | None = None,
    ) -> tuple[int, bool]:
        """Follow the cursor of *endpoint*/*segment* up to *max_pages*,
        offering each raw record while its page holds a parse slot; return
        the count of unusable records and whether SpyCloud holds more
        pages. With *kept*, the pages share one slot of the key's cap."""
        path = f"{endpoint}/{segment}" if segment else endpoint
        cursor = ""
        seen: set[str] = set()
        paging = paging or Paging()
        rejected = 0
        for _ in range(max_pages):
            answer = self.transport.get_json(
                ctx, path,
                {**params, "cursor": cursor} if cursor else params or None,
                parse=lambda payload: _fold(_page(payload), offer, paging),
                endpoint=endpoint, kept=kept,
            )
            if answer is None:  # 400: an identifier SpyCloud won't search
                return rejected, False
            cursor, unusable = answer
            rejected += unusable
            if cursor in seen:
                log.warning("SpyCloud repeated a cursor; paging stopped")
                cursor = ""
            seen.add(cursor)
            if not cursor:
                break
        return rejected, bool(cursor)

    def catalog_batch(
        self, ctx: Context, ids: Sequence[int], kept: Kept | None = None,
    ) -> dict[int, Catalog]:
        """Return the catalogs SpyCloud has among *ids* (at most
        `CATALOG_BATCH`), with the slot of the key's cap *kept* if given."""
        path = "breach/catalog/" + ",".join(str(i) for i in ids)
        payload = self.transport.get_json(ctx, path, kept=kept,
                                          endpoint="breach/catalog")
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
            f"SpyCloud answered with an unexpected body: {exc}.",
            kind="bad_body", status=200) from exc


@dataclass
class Paging:
    """What one paging met: the documents offered (each once), records
    without a usable id, and SpyCloud's total as its first page said."""

    documents: set[str] = field(default_factory=set)
    unnamed: int = 0
    hits: int | None = None
    first: bool = True


def _fold(page: Page, offer: Callable[[Any], None],
          paging: Paging) -> tuple[str, int]:
    """Offer a page's records one by one, each `document_id` once however
    often SpyCloud sends it (*paging*: what was offered so far); return the
    page's cursor and how many records were unusable. The page is dropped
    once read."""
    if paging.first:
        paging.hits, paging.first = page.hits, False
    rejected = 0
    for raw in page.results:
        document = raw.get("document_id") if isinstance(raw, dict) else None
        if isinstance(document, str):
            if document in paging.documents:
                continue
            paging.documents.add(document)
        else:
            paging.unnamed += 1
        try:
            offer(raw)
        except ValueError as exc:
            rejected += 1
            log.warning("unusable record skipped: %s", exc)
    return page.cursor, rejected
