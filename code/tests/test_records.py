"""Parsing SpyCloud payloads at the boundary."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from relay.records import (
    PayloadError, parse_catalog, parse_page, parse_record, parse_time,
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
    assert [k for k, _ in record.fields][-2:] == ["b", "a"]


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
