"""SpyCloud payloads → checked values; the rest of the relay trusts these.

Input, as `docs/spycloud.md` describes it: list answers are
`{"cursor": str, "hits": int, "results": [object, ...]}`; a breach record has
at least `document_id`, `source_id` (int) and `spycloud_publish_date`; a
catalog has `id`, `uuid`, `title` and optional descriptive fields. Anything
else raises `PayloadError` (the whole answer is unusable) or `ValueError`
(one record or catalog is unusable, the rest are kept).
"""

from __future__ import annotations

import datetime as dt
import heapq
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .observables import domain

UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


class PayloadError(ValueError):
    """A SpyCloud answer does not have the documented shape."""


@dataclass(frozen=True)
class Page:
    """One page of a list answer."""

    results: tuple[Mapping[str, Any], ...]
    cursor: str
    hits: int | None = None  # SpyCloud's total for the query, if usable


@dataclass(frozen=True)
class Record:
    """One breach record: the fields mapping needs, checked, and every
    field as SpyCloud sent it, in its order (the answer's own mapping,
    kept rather than copied: nothing changes it)."""

    document_id: str
    source_id: int
    published: dt.datetime
    severity: int | None
    sighting: int
    infected_machine_id: str | None
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Catalog:
    """The description of one breach."""

    id: int
    uuid: str | None
    title: str
    description: str | None
    site: str | None
    site_description: str | None
    published: dt.datetime | None
    confidence: int | None
    assets: tuple[str, ...]
    combo_list: bool


class Newest:
    """The newest *limit* records seen so far, in a bounded heap.

    Records arrive a page at a time; only *limit* are ever kept, so memory
    follows the answer, not what SpyCloud holds. Ties keep SpyCloud's order.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._heap: list[tuple[dt.datetime, int, Record]] = []
        self._seen = 0

    def add(self, records: Iterable[Record]) -> None:
        """Offer records in SpyCloud's order."""
        heap = self._heap
        for record in records:
            # Among equal dates the later arrival sorts lower: dropped first.
            item = (record.published, -self._seen, record)
            self._seen += 1
            if len(heap) < self.limit:
                heapq.heappush(heap, item)
            elif item[:2] > heap[0][:2]:
                heapq.heapreplace(heap, item)

    @property
    def seen(self) -> int:
        """Return how many records were offered, kept or not."""
        return self._seen

    def wants(self, published: dt.datetime) -> bool:
        """Say whether a record published then would be kept now (a tie
        with the oldest kept record loses: it arrived later)."""
        return len(self._heap) < self.limit or published > self._heap[0][0]

    def records(self) -> list[Record]:
        """Return the kept records, newest first."""
        return [item[2] for item in sorted(
            self._heap, key=lambda item: item[:2], reverse=True)]


@dataclass(frozen=True)
class RecordFilter:
    """Which records a module wants: a minimum SpyCloud severity (records
    without one, and unknown higher codes, are kept) and a first day."""

    min_severity: int = 0
    since: dt.date | None = None

    def admits(self, record: Record) -> bool:
        """Say whether *record* passes the filter."""
        if record.severity is not None and record.severity < self.min_severity:
            return False
        return self.since is None or record.published.date() >= self.since


def parse_page(payload: Any) -> Page:
    """Check the list envelope of a SpyCloud answer."""
    if not isinstance(payload, dict):
        raise PayloadError("the answer is not a JSON object")
    results = payload.get("results")
    if not isinstance(results, list):
        raise PayloadError("'results' is not a list")
    cursor = payload.get("cursor") or ""
    if not isinstance(cursor, str):
        raise PayloadError("'cursor' is not a string")
    hits = payload.get("hits")
    usable = isinstance(hits, int) and not isinstance(hits, bool) \
        and hits >= 0
    return Page(tuple(results), cursor, hits if usable else None)


def parse_record(
    raw: Any, keep: Callable[[dt.datetime], bool] | None = None
) -> Record | None:
    """Check one breach record; raise ValueError if it cannot be mapped.

    With *keep*, a record whose publish date *keep* refuses is checked but
    not built (None): most records of a long history are never kept.
    """
    if not isinstance(raw, dict):
        raise ValueError("a record is not a JSON object")
    document_id = raw.get("document_id")
    if not isinstance(document_id, str) or not document_id:
        raise ValueError("a record has no document_id")
    source_id = _as_int(raw.get("source_id"))
    if source_id is None:
        raise ValueError(f"record {document_id} has no usable source_id")
    published = parse_time(raw.get("spycloud_publish_date"))
    if published is None:
        raise ValueError(
            f"record {document_id} has no usable spycloud_publish_date"
        )
    if keep is not None and not keep(published):
        return None
    sighting = _as_int(raw.get("sighting"))
    machine = raw.get("infected_machine_id")
    return Record(
        document_id=document_id,
        source_id=source_id,
        published=published,
        severity=_as_int(raw.get("severity")),
        sighting=sighting if sighting and sighting > 0 else 1,
        infected_machine_id=str(machine) if machine else None,
        fields=raw,
    )


def parse_catalog(raw: Any) -> Catalog:
    """Check one catalog; raise ValueError if it cannot be mapped."""
    if not isinstance(raw, dict):
        raise ValueError("a catalog is not a JSON object")
    catalog_id = _as_int(raw.get("id"))
    if catalog_id is None:
        raise ValueError("a catalog has no usable id")
    title = raw.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"catalog {catalog_id} has no title")
    site = _string(raw.get("site"))
    # The breached site becomes a domain observable and a link: only a
    # valid domain may (`n/a` is SpyCloud's word for none).
    site = domain(site) if site is not None else None
    uuid = _string(raw.get("uuid"))
    assets = raw.get("assets")
    combo = raw.get("combo_list_flag")
    return Catalog(
        id=catalog_id,
        # A portal URL is built of it: only a UUID may.
        uuid=uuid.lower() if uuid is not None and UUID.fullmatch(uuid)
        else None,
        title=title,
        description=_string(raw.get("description")),
        site=site,
        site_description=_string(raw.get("site_description")),
        published=parse_time(raw.get("spycloud_publish_date")),
        confidence=_as_int(raw.get("confidence")),
        assets=tuple(str(a) for a in assets) if isinstance(assets, dict)
        else (),
        combo_list=combo is True
        or (isinstance(combo, str) and combo.strip().upper() == "YES"),
    )


def catalog_payload(catalog: Catalog) -> dict[str, Any]:
    """Return *catalog* as SpyCloud sends one: what a shared cache stores,
    so that a value read back passes `parse_catalog` like any answer."""
    return {
        "id": catalog.id, "uuid": catalog.uuid, "title": catalog.title,
        "description": catalog.description, "site": catalog.site,
        "site_description": catalog.site_description,
        "spycloud_publish_date": catalog.published.isoformat()
        if catalog.published else None,
        "confidence": catalog.confidence,
        "assets": dict.fromkeys(catalog.assets, 1),
        "combo_list_flag": "YES" if catalog.combo_list else "NO",
    }


def parse_time(value: Any) -> dt.datetime | None:
    """Parse SpyCloud's ISO 8601 time (`Z`, an offset, or none: UTC) into
    UTC, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def _as_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value.strip())
    return None


def _string(value: Any) -> str | None:
    """A non-empty string, or None."""
    return value if isinstance(value, str) and value else None
