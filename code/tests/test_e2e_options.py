"""Usernames, IPs, module options, refer and the records cache, under
gunicorn against the emulator."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests

from devtools import synthetic

from .helpers import answer

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_log")]


def post(stack, path: str, observables: list[tuple[str, str]],
         **claims: Any) -> dict:
    return answer(stack, path, [{"type": kind, "value": value}
                                for kind, value in observables], **claims)


def sightings(body: dict) -> list[dict]:
    return body.get("data", {}).get("sightings", {}).get("docs", [])


def stats(stack) -> dict:
    return requests.get(stack.emulator.url.replace(
        "/enterprise-v2/", "/_emulator/stats"), timeout=5).json()


@pytest.mark.parametrize(("kind", "value", "sent", "count"), [
    ("user", "jdoe", "jdoe", 4),
    ("ip", "203.0.113.5", "203.0.113.5", 3),
    ("ipv6", "2001:DB8:0::5", "2001:db8::5", 3),
])
def test_other_observable_types(stack, kind, value, sent, count) -> None:
    body = post(stack, "/observe/observables", [(kind, value)])
    docs = sightings(body)
    assert len(docs) == count
    assert {d["observables"][0]["value"] for d in docs} == {value}
    assert {d["targets"][0]["type"] for d in docs} == {kind}
    selector = "usernames" if kind == "user" else "ips"
    assert {d["external_ids"][0] for d in docs} == {
        r["document_id"] for r in synthetic.find(selector, sent)}


@pytest.mark.parametrize(("minimum", "kept"), [
    ("20", [20, 25, 26, 30]), ("26", [26, 30]), ("30", [30])])
def test_min_severity(stack, minimum, kept) -> None:
    body = post(stack, "/observe/observables",
                [("email", "severities@demo.test")], MIN_SEVERITY=minimum)
    severity = {r["document_id"]: r["severity"]
                for r in synthetic.records("severities@demo.test")}
    assert sorted(severity[d["external_ids"][0]] for d in sightings(body)) \
        == kept
    assert "errors" not in body


def test_a_domain_of_many_pages(stack) -> None:
    before = stats(stack)
    body = post(stack, "/observe/observables", [("domain", "Demo.Test")])
    held = len(synthetic.domains("demo.test"))
    assert held > 5_000
    assert body["errors"] == [{
        "type": "warning", "code": "too many results",
        "message": f"SpyCloud holds {held:,} records for Demo.Test; the relay"
        " reads at most 5 pages, and this answer covers the newest 5,000 of"
        " them."}]
    docs = sightings(body)
    assert len(docs) == 100  # the entity limit, as for every type
    assert {d["observables"][0]["value"] for d in docs} == {"Demo.Test"}
    employees = {o["value"] for d in docs
                 for o in d["targets"][0]["observables"] if o["type"] == "email"}
    assert employees and all(e.endswith("@demo.test") or
                             e.endswith("@partner.example") for e in employees)
    after = stats(stack)
    assert after["calls"]["breach/data/domains"] - before["calls"].get(
        "breach/data/domains", 0) == 5


def test_lookback_days_reaches_spycloud_as_since(stack) -> None:
    body = post(stack, "/observe/observables",
                [("email", "recent@demo.test")], LOOKBACK_DAYS=30)
    since = (dt.datetime.now(dt.timezone.utc).date()
             - dt.timedelta(days=30)).isoformat()
    assert stats(stack)["last_query"]["breach/data/emails"] == {"since": since}
    assert len(sightings(body)) == 4  # published 1, 5, 12 and 25 days ago
    assert all(d["observed_time"]["start_time"][:10] >= since
               for d in sightings(body))


def test_mask_passwords(stack) -> None:
    record = synthetic.records("cards@demo.test")[0]
    plain = post(stack, "/observe/observables", [("email", "cards@demo.test")])
    masked = post(stack, "/observe/observables",
                  [("email", "cards@demo.test")], MASK_PASSWORDS="true")
    assert record["password"] in str(plain)
    text = str(masked)
    for field in ("password", "password_plaintext", "cc_number", "cc_code"):
        assert record[field] not in text
    row = sightings(masked)[0]["data"]
    cells = dict(zip((c["name"] for c in row["columns"]), row["rows"][0]))
    assert cells["cc_number"] == "****" + record["cc_number"][-4:]
    assert cells["password"] == "********"
    assert cells["full_name"] == record["full_name"]


def test_unusable_option_warns(stack) -> None:
    body = post(stack, "/observe/observables", [("email", "jane.doe@demo.test")],
                LOOKBACK_DAYS="forever")
    assert body["errors"] == [{
        "type": "warning", "code": "invalid argument",
        "message": "The module option LOOKBACK_DAYS has an unusable value"
        " 'forever'; its default (no limit: records of any age) was used.",
    }]
    assert len(sightings(body)) == 6


def test_refer_after_observe_makes_no_call(stack) -> None:
    email = [("email", "n6.b6.s903@bench.test")]
    post(stack, "/observe/observables", email)
    before = stats(stack)["calls"].get("total", 0)
    again = post(stack, "/observe/observables", email)
    links = post(stack, "/refer/observables", email)
    assert stats(stack)["calls"].get("total", 0) == before
    assert len(sightings(again)) == 6
    data = links["data"]
    assert data[0]["id"] == "ref-spycloud-search-email-n6.b6.s903%40bench.test"
    assert [d["categories"][0] for d in data] == ["Search"] + ["Browse"] * 5
    assert all(d["url"].startswith("https://portal.spycloud.com/")
               for d in data)


def test_long_catalog_texts_are_cut(stack) -> None:
    body = post(stack, "/observe/observables", [("email", "longtext@demo.test")])
    indicator = body["data"]["indicators"]["docs"][0]
    assert len(indicator["title"]) == 1024
    assert len(indicator["description"]) == 5000
    assert indicator["description"].endswith("…")
