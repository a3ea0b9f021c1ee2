"""The tiles' aggregation, pure, with small literal watchlists."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from relay import tiles
from relay.records import parse_record

NOW = dt.datetime(2026, 3, 15, 12, 0, tzinfo=dt.timezone.utc)


def rec(n: int, day: str, severity: Any = 20, source: int = 1,
        who: str = "a@corp.example", **extra: Any):
    raw = {"email": who, "document_id": f"d{n}", "source_id": source,
           "spycloud_publish_date": f"{day}T00:00:00Z", **extra}
    if severity is not None:
        raw["severity"] = severity
    return parse_record(raw)


def exposure(records: list, period: str = "last_7_days") -> tiles.Exposure:
    start, end = tiles.window(period, NOW)
    found = tiles.Exposure(start, end, period in tiles.WEEKLY)
    for record in records:
        found.add(record)
    return found


def data(tile_id: str, found: tiles.Exposure, titles=None) -> Any:
    return tiles.tile_data(tile_id, found, titles or {})["data"]


WATCHLIST = [
    rec(1, "2026-03-14", 20, 1, "a@corp.example", password_type="plaintext"),
    rec(2, "2026-03-14", 25, 1, "b@corp.example", password_type="plaintext",
        infected_machine_id="m1"),
    rec(3, "2026-03-12", 25, 2, "b@corp.example", password_type="plaintext",
        infected_machine_id="m1"),
    rec(4, "2026-03-10", 5, 2, "c@corp.example", password_type="bcrypt"),
    rec(5, "2026-03-09", 2, 3, "a@corp.example"),
    rec(6, "2026-03-09", 26, 3, "d@corp.example", infected_machine_id="m2"),
    rec(7, "2026-03-09", 30, 3, "d@corp.example"),  # access data
    rec(8, "2026-03-01", 20, 1, "e@corp.example"),  # before the window
    rec(9, "2026-03-16", 20, 1, "e@corp.example"),  # after it (clock skew)
    rec(10, "2026-03-11", None, 4, "f@corp.example"),  # no severity
]


def test_summary() -> None:
    assert data("spycloud-exposure-summary", exposure(WATCHLIST)) == [
        {"icon": "user", "label": "Exposed identities", "value": 5,
         "value_unit": "integer"},
        {"icon": "bulleted-list", "label": "Breach records", "value": 8,
         "value_unit": "integer"},
        {"icon": "critical-stop", "label": "Plaintext passwords", "value": 5,
         "value_unit": "integer"},
        {"icon": "device-type", "label": "Infected devices", "value": 2,
         "value_unit": "integer"},
    ]


def test_records_outside_the_window_are_counted_apart() -> None:
    found = exposure(WATCHLIST)
    assert found.outside == 2
    # SpyCloud's dates are days (midnight): 24 hours back from noon holds
    # only today's records.
    today = rec(11, "2026-03-15", 20, 1, "g@corp.example")
    assert exposure([*WATCHLIST, today], "last_24_hours").records == 1


def test_donut_by_severity_and_password() -> None:
    shaped = tiles.tile_data("spycloud-exposures-by-severity",
                             exposure(WATCHLIST), {})
    assert shaped["labels"] == [
        ["Email only", "Informational", "Plaintext password",
         "Infected device", "Session cookies", "Access data", "Other"],
        ["plaintext", "hashed", "none"]]
    assert shaped["label_headers"] == ["Severity", "Password"]
    assert shaped["data"] == [
        {"key": 0, "value": 1, "segments": [{"key": 2, "value": 1}]},
        {"key": 1, "value": 1, "segments": [{"key": 1, "value": 1}]},
        {"key": 2, "value": 1, "segments": [{"key": 0, "value": 1}]},
        {"key": 3, "value": 2, "segments": [{"key": 0, "value": 2}]},
        {"key": 4, "value": 1, "segments": [{"key": 2, "value": 1}]},
        {"key": 5, "value": 1, "segments": [{"key": 2, "value": 1}]},
        {"key": 6, "value": 1, "segments": [{"key": 2, "value": 1}]},
    ]


@pytest.mark.parametrize(("code", "label"), [
    (26, "Session cookies"), (30, "Access data"), (40, "Other"),
    (-1, "Other"), (None, "Other")])
def test_every_severity_has_its_class_and_unknown_codes_are_other(
        code: Any, label: str) -> None:
    shaped = tiles.tile_data("spycloud-exposures-by-severity",
                             exposure([rec(1, "2026-03-14", code)]), {})
    (counted,) = shaped["data"]
    assert shaped["labels"][0][counted["key"]] == label


def test_new_exposures_per_day_and_per_week() -> None:
    shaped = tiles.tile_data("spycloud-new-exposures", exposure(WATCHLIST), {})
    assert shaped["key_type"] == "timestamp"
    assert [k["key"] for k in shaped["keys"]] == [
        "email_only", "informational", "plaintext", "infected", "cookies",
        "access", "other"]
    days = {d["label"]: (d["value"], d["values"]) for d in shaped["data"]}
    assert days["2026-03-09"] == (3, [{"key": "email_only", "value": 1},
                                      {"key": "cookies", "value": 1},
                                      {"key": "access", "value": 1}])
    # Every day of the period has its bar, in order, zero on quiet days.
    assert [d["label"] for d in shaped["data"]] == [
        f"2026-03-{n:02d}" for n in range(8, 16)]
    assert days["2026-03-13"] == days["2026-03-08"] == (0, [])
    # Epoch milliseconds, as XDR reads a timestamp key: 2026-03-09T00:00Z.
    assert shaped["data"][1]["key"] == 1_773_014_400_000
    weekly = tiles.tile_data("spycloud-new-exposures",
                             exposure(WATCHLIST, "last_60_days"), {})
    weeks = {d["label"]: d["value"] for d in weekly["data"]}
    assert list(weeks) == ["2026-01-12", "2026-01-19", "2026-01-26",
                           "2026-02-02", "2026-02-09", "2026-02-16",
                           "2026-02-23", "2026-03-02", "2026-03-09"]  # Mondays
    assert {k: v for k, v in weeks.items() if v} == {
        "2026-02-23": 1, "2026-03-09": 8}


def test_top_breaches_by_identities_with_titles() -> None:
    shaped = tiles.tile_data("spycloud-top-breaches", exposure(WATCHLIST),
                             {1: "Forum Breach", 3: "Shop Breach"})
    assert shaped["key_type"] == "string"
    assert [(d["key"], d["label"], d["value"]) for d in shaped["data"]] == [
        ("1", "Forum Breach", 2), ("2", "Breach 2", 2),
        ("3", "Shop Breach", 2), ("4", "Breach 4", 1)]
    assert shaped["data"][2]["values"] == [
        {"key": "email_only", "value": 1}, {"key": "access", "value": 1}]


def test_top_breaches_are_ten() -> None:
    many = [rec(n, "2026-03-14", 20, n, f"u{n}@x") for n in range(15)]
    many += [rec(99, "2026-03-14", 20, 14, "other@x")]
    found = exposure(many)
    assert found.top_breaches()[0] == 14
    assert len(data("spycloud-top-breaches", found)) == 10


def test_most_exposed_markdown() -> None:
    lines = data("spycloud-most-exposed", exposure(WATCHLIST))
    assert lines == [
        "| Identity | Records | Worst severity | Newest exposure |",
        "|---|---|---|---|",
        "| a\\@corp\\.example | 2 | Plaintext password (20) | 2026-03-14 |",
        "| b\\@corp\\.example | 2 | Infected device (25) | 2026-03-14 |",
        "| d\\@corp\\.example | 2 | Access data (30) | 2026-03-09 |",
        "| c\\@corp\\.example | 1 | Informational (5) | 2026-03-10 |",
        "| f\\@corp\\.example | 1 | Other | 2026-03-11 |",
    ]


def test_most_exposed_escapes_table_syntax() -> None:
    lines = data("spycloud-most-exposed", exposure(
        [rec(1, "2026-03-14", 20, 1, "x|y\nz@corp.example")]))
    assert lines[2].startswith("| x\\|y z\\@corp\\.example | 1 |")


@pytest.mark.parametrize("tile_id", list(tiles.TILES))
def test_empty_watchlist(tile_id: str) -> None:
    shaped = tiles.tile_data(tile_id, exposure([]), {})
    assert shaped["cache_scope"] == "org"
    assert shaped["observed_time"] == shaped["valid_time"] == {
        "start_time": "2026-03-08T12:00:00.000Z",
        "end_time": "2026-03-15T12:00:00.000Z"}
    if tile_id == "spycloud-exposure-summary":
        assert [d["value"] for d in shaped["data"]] == [0, 0, 0, 0]
    elif tile_id == "spycloud-most-exposed":
        assert shaped["data"][2] == "| no exposure in this period | | | |"
    elif tile_id == "spycloud-new-exposures":  # eight days of nothing
        assert [d["value"] for d in shaped["data"]] == [0] * 8
    else:
        assert shaped["data"] == []


def test_definitions() -> None:
    assert list(tiles.TILES) == [
        "spycloud-exposure-summary", "spycloud-exposures-by-severity",
        "spycloud-new-exposures", "spycloud-top-breaches",
        "spycloud-most-exposed"]
    for tile_id in tiles.TILES:
        doc = tiles.definition(tile_id)
        assert set(doc) == {"id", "type", "title", "short_description",
                            "description", "tags", "periods",
                            "default_period"}
        assert doc["periods"] == ["last_24_hours", "last_7_days",
                                  "last_30_days", "last_60_days",
                                  "last_90_days"]
        assert doc["default_period"] == "last_7_days"
        assert "SpyCloud" in doc["title"]


# The icon names XDR draws (those Cisco's own relays use).
DRAWN = {"device-type", "bulleted-list", "label-group", "static-nat",
         "information", "warning", "critical-stop", "object", "vpn", "user",
         "view-metadata", "umbrella", "block"}


def test_every_icon_is_one_xdr_draws() -> None:
    shaped = tiles.tile_data("spycloud-exposure-summary", exposure(WATCHLIST),
                             {})
    assert {m["icon"] for m in shaped["data"]} <= DRAWN


def test_top_breach_labels_are_plain_and_bounded() -> None:
    shaped = tiles.tile_data("spycloud-top-breaches", exposure(WATCHLIST),
                             {1: "Forum\r\nBreach\u202e", 3: "S" * 200_000})
    labels = {d["key"]: d["label"] for d in shaped["data"]}
    assert labels["1"] == "Forum  Breach"
    assert labels["3"] == "S" * 199 + "…"
