"""Parsing SpyCloud payloads at the boundary."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from relay.records import (
    Newest, PayloadError, RecordFilter, parse_catalog, parse_page,
    parse_record, parse_time,
)

GOOD = {
    "document_id": "d", "source_id": 5,
    "spycloud_publish_date": "2020-01-01T00:00:00Z",
}


@pytest.mark.parametrize("payload", [
    [], "text", None, {"results": {}}, {"results": None},
    {"results": [], "cursor": 5},
])
def test_bad_envelopes(payload: Any) -> None:
    with pytest.raises(PayloadError):
        parse_page(payload)


def test_envelope_defaults() -> None:
    page = parse_page({"results": [{}, {}]})
    assert (page.cursor, len(page.results)) == ("", 2)
    assert parse_page({"results": [], "cursor": None, "hits": 9}).cursor == ""


@pytest.mark.parametrize("change", [
    {"document_id": None}, {"document_id": ""}, {"source_id": None},
    {"source_id": "abc"}, {"source_id": True},
    {"spycloud_publish_date": "yesterday"}, {"spycloud_publish_date": None},
    {"spycloud_publish_date": 20200101},
])
def test_unusable_records(change: dict[str, Any]) -> None:
    raw = {**GOOD, **change}
    with pytest.raises(ValueError):
        parse_record({k: v for k, v in raw.items() if v is not None})


def test_record_not_an_object() -> None:
    with pytest.raises(ValueError):
        parse_record(["a"])


def test_record_string_source_id_and_field_order() -> None:
    record = parse_record({**GOOD, "source_id": "12", "b": 1, "a": 2})
    assert record.source_id == 12
    assert list(record.fields)[-2:] == ["b", "a"]


@pytest.mark.parametrize("raw", [
    "x", {"title": "t"}, {"id": 1}, {"id": 1, "title": "  "},
    {"id": "one", "title": "t"},
])
def test_unusable_catalogs(raw: Any) -> None:
    with pytest.raises(ValueError):
        parse_catalog(raw)


def test_catalog_minimal() -> None:
    catalog = parse_catalog({"id": "3", "title": "T", "assets": ["x"]})
    assert (catalog.id, catalog.uuid, catalog.site, catalog.assets) == (
        3, None, None, ()
    )
    assert catalog.published is None and catalog.combo_list is False


@pytest.mark.parametrize(("text", "expected"), [
    ("2020-04-16T00:00:00Z", dt.datetime(2020, 4, 16, tzinfo=dt.timezone.utc)),
    ("2020-04-16", dt.datetime(2020, 4, 16, tzinfo=dt.timezone.utc)),
    ("2020-04-16T02:30:00+02:00",
     dt.datetime(2020, 4, 16, 0, 30, tzinfo=dt.timezone.utc)),
    ("2020-13-01", None), ("", None), (None, None), (5, None),
])
def test_parse_time(text: Any, expected: dt.datetime | None) -> None:
    assert parse_time(text) == expected


def made(**changes: Any):
    return parse_record({**GOOD, **changes})


def newest(records: list, limit: int, pages: int = 1) -> list[str]:
    kept = Newest(limit)
    step = max(1, len(records) // pages)
    for start in range(0, len(records), step):
        kept.add(records[start:start + step])
    return [r.document_id for r in kept.records()]


def test_newest_first_stable_for_ties_and_cut() -> None:
    records = [
        made(document_id="old", spycloud_publish_date="2019-01-01"),
        made(document_id="new1", spycloud_publish_date="2022-01-01"),
        made(document_id="mid", spycloud_publish_date="2020-01-01"),
        made(document_id="new2", spycloud_publish_date="2022-01-01"),
    ]
    assert newest(records, 3) == ["new1", "new2", "mid"]
    assert newest(records, 3, pages=4) == ["new1", "new2", "mid"]
    assert newest(records, 10) == ["new1", "new2", "mid", "old"]
    assert newest(records, 1, pages=2) == ["new1"]


def test_newest_ties_beyond_the_limit_keep_the_first_arrivals() -> None:
    records = [made(document_id=f"d{n}", spycloud_publish_date="2021-05-05")
               for n in range(6)]
    assert newest(records, 4, pages=3) == ["d0", "d1", "d2", "d3"]


def test_newest_holds_no_more_than_its_limit() -> None:
    kept = Newest(2)
    for day in range(1, 29):
        kept.add([made(document_id=f"d{day}",
                       spycloud_publish_date=f"2021-02-{day:02d}")])
        assert len(kept.records()) == min(day, 2)
    assert [r.document_id for r in kept.records()] == ["d28", "d27"]


def test_newest_counts_every_record_it_is_offered() -> None:
    kept = Newest(2)
    kept.add([made(document_id=f"d{n}") for n in range(5)])
    kept.add([made(document_id="late")])
    assert kept.seen == 6
    assert len(kept.records()) == 2


@pytest.mark.parametrize(("severity", "minimum", "admitted"), [
    (None, 25, True),  # a record without a severity is kept
    (2, 5, False), (5, 5, True), (26, 25, True), (30, 25, True),
    (20, 0, True),
])
def test_the_filter_by_severity(severity, minimum, admitted) -> None:
    record = made(severity=severity) if severity is not None else made()
    assert RecordFilter(min_severity=minimum).admits(record) is admitted


def test_the_filter_by_day() -> None:
    only = RecordFilter(since=dt.date(2020, 1, 1))
    assert only.admits(made(spycloud_publish_date="2020-01-01T00:00:00Z"))
    assert not only.admits(made(spycloud_publish_date="2019-12-31T23:59:59Z"))


CATALOG = {"id": 7, "title": "Breach",
           "uuid": "8E9F2A3B-1111-4C2D-9E8F-0A1B2C3D4E5F"}


@pytest.mark.parametrize("site, kept", [
    ("forum.example.net", "forum.example.net"),
    ("Forum.Example.NET.", "forum.example.net"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("n/a", None), ("N/A", None), ("", None), (None, None), (7, None),
    ("javascript:alert(1)", None), ("<svg onload=alert(3)>", None),
    ("data:text/html,x", None), ("https://forum.example.net", None),
    ("forum.example.net/login", None), ("forum.example.net:443", None),
    ("*.example.net", None), ("forum example.net", None),
    ("localhost", None), ("1.2.3.4", None), ("-bad.example", None),
    ("bad-.example", None), ("a..example", None),
    ("a" * 64 + ".example", None), (".".join(["a" * 60] * 5), None),
    ("//evil.example", None), ("evil.example\n", None),
])
def test_a_catalog_site_is_kept_only_as_a_domain(site: Any,
                                                 kept: str | None) -> None:
    raw = {**CATALOG, "site": site} if site is not None else CATALOG
    assert parse_catalog(raw).site == kept


@pytest.mark.parametrize("uuid, kept", [
    ("8E9F2A3B-1111-4C2D-9E8F-0A1B2C3D4E5F",
     "8e9f2a3b-1111-4c2d-9e8f-0a1b2c3d4e5f"),
    ("../../../../evil?x=1#frag", None), ("uuid-7", None), ("", None),
    ("8e9f2a3b11114c2d9e8f0a1b2c3d4e5f", None), (7, None),
    ("8e9f2a3b-1111-4c2d-9e8f-0a1b2c3d4e5f/../x", None),
])
def test_a_catalog_uuid_is_kept_only_as_a_uuid(uuid: Any,
                                               kept: str | None) -> None:
    assert parse_catalog({**CATALOG, "uuid": uuid}).uuid == kept


@pytest.mark.parametrize(("hits", "read"), [
    (12, 12), (0, 0), (None, None), (True, None), (-1, None), ("12", None),
    (1.5, None)])
def test_a_pages_total_is_kept_when_usable(hits: Any, read: Any) -> None:
    assert parse_page({"cursor": "", "results": [], "hits": hits}).hits \
        == read
