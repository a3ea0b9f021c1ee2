"""The mapping rules of docs/ctim.md, one small literal fixture each."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import orjson
import pytest
from dirty_equals import IsStr

from relay import ctim
from relay.records import parse_catalog, parse_record

from .conftest import load


def plain(doc: Any) -> Any:
    """The document as it goes out: JSON, read back."""
    return orjson.loads(orjson.dumps(doc))


EMAIL = "Jane.Doe@example.com"
OBS = ("email", EMAIL)
SIGHTING_ID = IsStr(regex=r"transient:sighting-[0-9a-f-]{36}")
INDICATOR_ID = IsStr(regex=r"transient:indicator-[0-9a-f-]{36}")
PORTAL = "https://portal.spycloud.com/breach/catalog/"


def record(**changes: Any):
    raw = load("record.json")
    raw.update(changes)
    return parse_record({k: v for k, v in raw.items() if v is not None})


def catalog(**changes: Any):
    raw = load("catalog.json")
    raw.update(changes)
    return parse_catalog({k: v for k, v in raw.items() if v is not None})


def test_sighting_whole_document() -> None:
    observed = {
        "start_time": "2020-04-16T00:00:00.000000Z",
        "end_time": "2020-04-16T00:00:00.000000Z",
    }
    observables = [{"type": "email", "value": EMAIL}]
    assert plain(ctim.sighting(OBS, record(), catalog())) == {
        "id": SIGHTING_ID,
        "type": "sighting",
        "schema_version": "1.0.17",
        "source": "Spycloud",
        "title": "Reported to Spycloud",
        "confidence": "High",
        "internal": False,
        "count": 3,
        "observables": observables,
        "observed_time": observed,
        "targets": [{
            "type": "email",
            "observables": observables,
            "observed_time": observed,
        }],
        "severity": "High",
        "external_ids": ["2ff4b1a4-6b1a-4c1f-9a55-0c7b5b6f6f01", "11"],
        "description": "Present in Example Forum Breach",
        "source_uri": PORTAL + "8e9f2a3b-1111-4c2d-9e8f-0a1b2c3d4e5f",
        "relations": [{
            "origin": "Spycloud Breach Module",
            "relation": "Leaked_From",
            "source": {"type": "email", "value": EMAIL},
            "related": {"type": "domain", "value": "forum.example.net"},
        }],
        "data": {
            "columns": [
                {"name": "email", "type": "string"},
                {"name": "password", "type": "string"},
                {"name": "password_type", "type": "string"},
                {"name": "ip_addresses", "type": "string"},
                {"name": "full_name", "type": "string"},
            ],
            "rows": [[
                "jane.doe@example.com", "hunter2", "plaintext",
                "10.0.0.1, 10.0.0.2", "********",
            ]],
        },
    }


def test_sighting_without_catalog() -> None:
    doc = ctim.sighting(OBS, record(), None)
    assert doc["description"] == "Present in breach"
    assert "source_uri" not in doc
    assert doc["relations"] == []


@pytest.mark.parametrize("site", ["n/a", "N/A", None, ""])
def test_unusable_site_gives_no_relation(site: str | None) -> None:
    doc = ctim.sighting(OBS, record(), catalog(site=site))
    assert doc["relations"] == []


def test_infected_machine_id_is_third_external_id() -> None:
    doc = ctim.sighting(OBS, record(infected_machine_id="m-1"), None)
    assert doc["external_ids"] == [
        "2ff4b1a4-6b1a-4c1f-9a55-0c7b5b6f6f01", "11", "m-1"
    ]
    assert "infected_machine_id" not in str(plain(doc["data"]["columns"]))


@pytest.mark.parametrize(("value", "count"), [
    (3, 3), (1, 1), (0, 1), (-4, 1), ("7", 7), ("x", 1), (None, 1),
    (True, 1),
])
def test_count(value: Any, count: int) -> None:
    assert ctim.sighting(OBS, record(sighting=value), None)["count"] == count


@pytest.mark.parametrize(("code", "label"), [
    (0, "Low"), (2, "Low"), (3, "Medium"), (5, "Medium"), (6, "High"),
    (20, "High"), (25, "High"), (30, "High"), (99, "High"),
    (None, "Unknown"), ("high", "Unknown"), (-1, "Unknown"),
])
def test_severity(code: Any, label: str) -> None:
    assert ctim.severity(record(severity=code), None) == label


@pytest.mark.parametrize("flag", ["YES", "yes", True])
def test_combo_list_is_medium_whatever_the_record_says(flag: Any) -> None:
    combo = catalog(combo_list_flag=flag)
    assert ctim.severity(record(severity=25), combo) == "Medium"
    assert ctim.severity(record(severity=2), combo) == "Medium"


@pytest.mark.parametrize("flag", ["NO", False, None])
def test_not_a_combo_list(flag: Any) -> None:
    assert ctim.severity(record(severity=2), catalog(combo_list_flag=flag)) \
        == "Low"


def test_data_table_keeps_order_and_joins_lists() -> None:
    raw = {
        "document_id": "d", "source_id": 1,
        "spycloud_publish_date": "2021-01-01T00:00:00Z",
        "zeta": "z", "alpha": ["a", "b", 3], "mid": 5, "flag": False,
        "nested": {"b": 1, "a": 2},
    }
    assert plain(ctim.data_table(parse_record(raw))) == {
        "columns": [{"name": n, "type": "string"}
                    for n in ("zeta", "alpha", "mid", "flag", "nested")],
        "rows": [["z", "a, b, 3", "5", "false", '{"a": 2, "b": 1}']],
    }


@pytest.mark.parametrize(("extra", "columns", "row"), [
    ({}, [], []),
    ({"zeta": 7}, ["zeta"], ["7"]),
    ({"zeta": "z", "email": "a@b.co"}, ["zeta", "email"], ["z", "a@b.co"]),
])
def test_data_table_of_no_one_or_more_fields(extra, columns, row) -> None:
    raw = {"document_id": "d", "source_id": 1, "severity": 2,
           "spycloud_publish_date": "2021-01-01T00:00:00Z", **extra}
    table = plain(ctim.data_table(parse_record(raw)))
    assert table == {"columns": [{"name": n, "type": "string"}
                                 for n in columns], "rows": [row]}


def test_records_of_one_layout_get_each_their_own_row() -> None:
    base = {"document_id": "d", "source_id": 1, "password": "p1",
            "spycloud_publish_date": "2021-01-01T00:00:00Z", "zeta": "a"}
    first = ctim.data_table(parse_record(base), True)
    second = ctim.data_table(parse_record({**base, "zeta": "b"}), False)
    assert first["rows"] == [[ctim.MASK, "a"]]
    assert second["rows"] == [["p1", "b"]]
    assert plain(first["columns"]) == plain(second["columns"])


def test_transient_id_is_a_uuid5() -> None:
    import uuid
    expected = uuid.uuid5(ctim.ID_NAMESPACE, "a@b.co\x1fdoc-1")
    assert ctim.transient_id("sighting", "a@b.co", "doc-1") == \
        f"transient:sighting-{expected}"


def test_sighting_id_is_stable_and_depends_on_email_and_document() -> None:
    first = ctim.sighting(OBS, record(), None)["id"]
    assert ctim.sighting(OBS, record(), None)["id"] == first
    assert ctim.sighting(("email", "other@example.com"), record(), None)["id"] != first
    assert ctim.sighting(OBS, record(document_id="x"), None)["id"] != first


def test_time_is_utc_with_microseconds() -> None:
    doc = ctim.sighting(
        OBS, record(spycloud_publish_date="2021-06-01T02:00:00+02:00"), None
    )
    assert doc["observed_time"]["start_time"] == "2021-06-01T00:00:00.000000Z"


def test_indicator_whole_document() -> None:
    assert ctim.indicator(catalog()) == {
        "id": INDICATOR_ID,
        "type": "indicator",
        "schema_version": "1.0.17",
        "producer": "Spycloud",
        "title": "Example Forum Breach",
        "short_description": "Example Forum Breach",
        "description": "In 2019 the example forum was breached.",
        "valid_time": {"start_time": "2020-04-01T00:00:00.000000Z"},
        "confidence": "High",
        "external_ids": ["11", "8e9f2a3b-1111-4c2d-9e8f-0a1b2c3d4e5f"],
        "external_references": [
            {
                "source_name": "Spycloud",
                "description": "A forum for examples.",
                "url": "https://forum.example.net",
            },
            {
                "source_name": "Spycloud",
                "description": "In 2019 the example forum was breached.",
                "url": PORTAL + "8e9f2a3b-1111-4c2d-9e8f-0a1b2c3d4e5f",
                "external_id": "8e9f2a3b-1111-4c2d-9e8f-0a1b2c3d4e5f",
            },
        ],
        "tags": ["email", "password"],
    }


@pytest.mark.parametrize(("value", "label"), [
    (1, "High"), (2, "Medium"), (3, "Low"), (None, "Low"), (7, "Low"),
])
def test_indicator_confidence(value: Any, label: str) -> None:
    assert ctim.indicator(catalog(confidence=value))["confidence"] == label


def test_indicator_references_need_usable_site_and_description() -> None:
    bare = catalog(site="n/a", description=None, assets=None)
    doc = ctim.indicator(bare)
    assert doc["external_references"] == []
    assert doc["tags"] == []
    assert "description" not in doc


def test_indicator_id_is_stable() -> None:
    assert ctim.indicator(catalog())["id"] == ctim.indicator_id(11)
    assert ctim.indicator_id(11) != ctim.indicator_id(12)


def test_relationship_whole_document() -> None:
    doc = ctim.relationship("transient:sighting-a", "transient:indicator-b")
    assert doc == {
        "id": IsStr(regex=r"transient:relationship-[0-9a-f-]{36}"),
        "type": "relationship",
        "schema_version": "1.0.17",
        "relationship_type": "sighting-of",
        "source_ref": "transient:sighting-a",
        "target_ref": "transient:indicator-b",
    }
    again = ctim.relationship("transient:sighting-a", "transient:indicator-b")
    assert again["id"] == doc["id"]


def test_observe_links_each_sighting_to_one_indicator_per_catalog() -> None:
    records = [
        record(document_id="a"),
        record(document_id="b"),
        record(document_id="c", source_id=99),
    ]
    out = ctim.observe(OBS, records, {11: catalog()})
    assert [s["description"] for s in out["sightings"]] == [
        "Present in Example Forum Breach",
        "Present in Example Forum Breach",
        "Present in breach",
    ]
    assert [i["id"] for i in out["indicators"]] == [ctim.indicator_id(11)]
    assert [(r["source_ref"], r["target_ref"]) for r in out["relationships"]] \
        == [(s["id"], ctim.indicator_id(11)) for s in out["sightings"][:2]]


def test_time_format() -> None:
    value = dt.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
    assert re.fullmatch(r"2020-01-02T03:04:05\.000006Z", ctim.time(value))


@pytest.mark.parametrize(("value", "field", "shown"), [
    ("", "password", "********"), ("a", "password", "********"),
    ("abcd", "password_plaintext", "********"),
    ("demo-secret-1234-and-a-long-tail", "password", "********"),
    ("4111 1111 1111 1234", "cc_number", "****1234"),
    ("4111111111111234", "cc_number", "****1234"),
    ("1234", "cc_number", "********"), ("123", "cc_code", "********"),
    ("12/29", "cc_expiration", "********"),
])
def test_masked_hides_the_length_cards_keep_their_last_four(
        value: str, field: str, shown: str) -> None:
    assert ctim.masked(value, field) == shown


def test_mask_hides_passwords_and_card_fields_only() -> None:
    doc = record(password="hunter22", password_plaintext="hunter22",
                 cc_number=4111111111111111, cc_code="123", salt="pepper")
    table = plain(ctim.data_table(doc, True))
    cells = dict(zip([c["name"] for c in table["columns"]], table["rows"][0]))
    assert cells["password"] == cells["password_plaintext"] == "********"
    assert cells["cc_number"] == "****1111"
    assert cells["cc_code"] == "********"
    assert cells["salt"] == "pepper"
    shown = ctim.data_table(doc)["rows"][0]
    assert "hunter22" in shown and "hunter22" not in str(
        plain(ctim.sighting(OBS, doc, None, mask=True)))


def test_texts_are_cut_to_ctim_limits() -> None:
    long = catalog(title="T" * 6000, description="D" * 6000,
                   site_description="S" * 6000)
    doc = ctim.indicator(long)
    assert len(doc["title"]) == 1024 and doc["title"].endswith("…")
    assert len(doc["short_description"]) == 2048
    assert len(doc["description"]) == 5000 and doc["description"][-1] == "…"
    assert [len(r["description"]) for r in doc["external_references"]] == [
        5000, 5000]
    sighting = ctim.sighting(OBS, record(), long)
    assert len(sighting["description"]) == 5000
    assert ctim.cut("short", 1024) == "short"


def test_other_types_name_themselves_and_get_their_own_ids() -> None:
    by_ip = ctim.sighting(("ip", "203.0.113.5"), record(), catalog())
    by_user = ctim.sighting(("user", "203.0.113.5"), record(), catalog())
    assert by_ip["observables"] == [{"type": "ip", "value": "203.0.113.5"}]
    assert by_ip["targets"][0]["type"] == "ip"
    assert by_ip["relations"][0]["source"] == {"type": "ip",
                                               "value": "203.0.113.5"}
    assert by_ip["id"] != by_user["id"]


def test_a_domains_target_names_the_employee_the_record_concerns() -> None:
    sighting = ctim.sighting(("domain", "example.com"), record(), catalog())
    domain = {"type": "domain", "value": "example.com"}
    assert sighting["observables"] == [domain]
    assert sighting["targets"][0]["type"] == "domain"
    assert sighting["targets"][0]["observables"] == [
        domain, {"type": "email", "value": "jane.doe@example.com"}]
    assert sighting["relations"][0]["source"] == domain  # Leaked_From
    by_email = ctim.sighting(("email", "jane.doe@example.com"), record(),
                             catalog())
    assert sighting["id"] != by_email["id"]
    assert by_email["targets"][0]["observables"] == by_email["observables"]


@pytest.mark.parametrize("value", [None, "", "not an email", "a@b", 17,
                                   "jane\u200b@example.com"])
def test_a_domains_target_leaves_out_an_unusable_email(value: Any) -> None:
    sighting = ctim.sighting(("domain", "example.com"), record(email=value),
                             catalog())
    assert sighting["targets"][0]["observables"] == [
        {"type": "domain", "value": "example.com"}]
