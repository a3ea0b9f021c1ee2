"""The real relay under gunicorn, against the emulator, over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from devtools import synthetic

from .helpers import answer, observables

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_log")]


@pytest.fixture
def post(stack) -> Callable[..., dict]:
    def post(path: str, body: Any = None, **claims: Any) -> dict:
        return answer(stack, path, body, **claims)
    return post


def observe(post, *emails: str, **claims: Any) -> dict:
    return post("/observe/observables", observables("email", emails),
                **claims)


def docs(body: dict, kind: str = "sightings") -> list[dict]:
    return body.get("data", {}).get(kind, {}).get("docs", [])


def test_health_ok(post) -> None:
    assert post("/health") == {"data": {"status": "ok"}}


def test_health_with_a_wrong_key(post) -> None:
    assert post("/health", key="wrong-key") == {"errors": [{
        "type": "fatal", "code": "authorization error",
        "message": "Authorization failed: Invalid API key",
    }]}


def test_version_and_watchdog(stack) -> None:
    assert requests.post(stack.url + "/version", timeout=5).json() == {
        "version": "1.0.0"
    }
    answer = requests.get(stack.url + "/watchdog", timeout=5,
                          headers={"Health-Check": "ping"})
    assert answer.json() == {"data": "ping"}


def test_no_records(post) -> None:
    assert observe(post, "nobody@demo.test") == {"data": {}}


def test_handful_over_several_breaches(post) -> None:
    body = observe(post, "jane.doe@demo.test")
    assert "errors" not in body
    assert {k: v["count"] for k, v in body["data"].items()} == {
        "sightings": 6, "indicators": 4, "relationships": 6,
    }
    times = [s["observed_time"]["start_time"] for s in docs(body)]
    assert times == sorted(times, reverse=True)
    indicator_ids = {i["id"] for i in docs(body, "indicators")}
    assert {r["target_ref"] for r in docs(body, "relationships")} == \
        indicator_ids
    assert {r["source_ref"] for r in docs(body, "relationships")} == \
        {s["id"] for s in docs(body)}


def test_150_records_cut_to_the_limit(post) -> None:
    assert len(docs(observe(post, "heavy@demo.test"))) == 100
    assert len(docs(observe(post, "heavy@demo.test",
                            CTR_ENTITIES_LIMIT="150"))) == 150


def test_2500_records_over_three_pages(stack, post) -> None:
    requests.post(stack.emulator.url.replace("/enterprise-v2/",
                                             "/_emulator/reset"), timeout=5)
    body = observe(post, "huge@demo.test", CTR_ENTITIES_LIMIT=30)
    assert stack.emulator.calls["breach/data/emails"] == 3
    times = [s["observed_time"]["start_time"] for s in docs(body)]
    assert len(times) == 30
    newest = sorted((r["spycloud_publish_date"] for r in
                     synthetic.records("huge@demo.test")), reverse=True)[:30]
    assert [t[:10] for t in times] == [t[:10] for t in newest]


def test_combo_list_is_medium(post) -> None:
    assert {s["severity"] for s in docs(observe(post, "combo@demo.test"))} \
        == {"Medium"}


def test_missing_catalog(post) -> None:
    body = observe(post, "orphan@demo.test")
    assert body["errors"] == [{
        "type": "warning", "code": "not found",
        "message": "SpyCloud did not return results for 4040",
    }]
    described = sorted(s["description"] for s in docs(body))
    assert described[1] == "Present in breach"
    assert len(docs(body, "indicators")) == 1


def test_site_na(post) -> None:
    body = observe(post, "nosite@demo.test")
    assert all(s["relations"] == [] for s in docs(body))
    references = docs(body, "indicators")[0]["external_references"]
    assert [r["url"] for r in references] == [
        "https://portal.spycloud.com/breach/catalog/"
        + synthetic.catalog(synthetic.NOSITE_CATALOG)["uuid"]
    ]
    assert "n/a" not in str(docs(body, "indicators"))


def test_list_and_masked_fields(post) -> None:
    row = docs(observe(post, "lists@demo.test"))[0]["data"]
    cells = dict(zip((c["name"] for c in row["columns"]), row["rows"][0]))
    assert cells["ip_addresses"] == "203.0.113.5, 203.0.113.9"
    masked = docs(observe(post, "masked@demo.test"))[0]["data"]
    cells = dict(zip((c["name"] for c in masked["columns"]),
                     masked["rows"][0]))
    assert cells["full_name"] == cells["phone"] == "********"


def test_severities(post) -> None:
    body = observe(post, "severities@demo.test")
    by_machine = sorted(s["severity"] for s in docs(body))
    assert by_machine == ["High", "High", "High", "High", "Low", "Medium"]


FAULTS = [
    ("throttle", "too many requests",
     "Too many requests have been made to Spycloud. Please, try again later."),
    ("quota", "too many requests",
     "The SpyCloud API quota of this key is used up. Please, try again when"
     " SpyCloud has renewed it."),
    ("500", "internal error", "The Spycloud internal error."),
    ("502", "unknown", "SpyCloud answered 502 Bad Gateway."),
    ("504", "unknown", "SpyCloud answered 504 Gateway Timeout."),
    ("badjson", "unknown",
     "SpyCloud answered with a body that is not valid JSON."),
    ("html", "unknown",
     "SpyCloud answered with a body that is not valid JSON."),
    ("drop", "unknown", "The relay could not connect to SpyCloud."),
]


@pytest.mark.parametrize(("fault", "code", "message"), FAULTS)
def test_injected_fault(post, fault, code, message) -> None:
    assert observe(post, f"fault-{fault}@demo.test") == {"errors": [{
        "type": "fatal", "code": code, "message": message,
    }]}


def test_slow_answer_still_arrives(post) -> None:
    assert "errors" not in observe(post, "fault-slow@demo.test")


def test_transient_fault_is_retried(post) -> None:
    body = observe(post, "once-502@demo.test")
    assert "errors" not in body


def test_fatal_error_on_one_email_keeps_the_others(post) -> None:
    body = observe(post, "jane.doe@demo.test", "fault-500@demo.test",
                   "severities@demo.test")
    assert body["errors"] == [{
        "type": "fatal", "code": "internal error",
        "message": "The Spycloud internal error.",
    }]
    emails = [s["observables"][0]["value"] for s in docs(body)]
    assert emails == ["jane.doe@demo.test"] * 6 + ["severities@demo.test"] * 6


def test_concurrent_requests_keep_their_own_limits(post) -> None:
    limits = [3, 7] * 10
    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(
            lambda n: len(docs(observe(post, "heavy@demo.test",
                                       CTR_ENTITIES_LIMIT=n))),
            limits,
        ))
    assert counts == limits


def test_access_line_counts_the_spycloud_calls(stack, post) -> None:
    start = stack.log_path.stat().st_size
    # A breach set no other test uses: one records call, one catalog call.
    observe(post, "n3.b2.s901@bench.test")
    observe(post, "n3.b2.s901.u1@bench.test")  # its breaches are now known
    lines = [line for line in stack.log_path.read_text()[start:].splitlines()
             if "POST /observe/observables" in line]
    assert [line.rsplit(" ", 1)[1] for line in lines] == [
        "spycloud_calls=2", "spycloud_calls=1"
    ]


def test_every_entity_once_per_answer(post) -> None:
    # jane.doe and orphan share breach 1001; the bench emails share 10.
    for emails in (("jane.doe@demo.test", "orphan@demo.test"),
                   ("n20.b10.s902.u0@bench.test",
                    "n20.b10.s902.u1@bench.test")):
        body = observe(post, *emails)
        for kind in body["data"].values():
            ids = [doc["id"] for doc in kind["docs"]]
            assert len(ids) == len(set(ids)) == kind["count"]
    assert body["data"]["indicators"]["count"] == 10
    assert body["data"]["relationships"]["count"] == 40


def test_chunked_body_over_the_cap(stack) -> None:
    def chunks():
        yield b"["
        for _ in range(2048):
            yield b" " * 1024
        yield b"]"

    answer = requests.post(stack.url + "/observe/observables", data=chunks(),
                           timeout=30,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert answer.json()["reason"] == "RequestEntityTooLarge"


def vocabulary() -> set[str]:
    """The relation names docs/ctim.md lists (CTIM's own, and Leaked_From)."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "ctim.md").read_text()
    block = text.split("<!-- relations:start -->")[1].split(
        "<!-- relations:end -->")[0]
    return {line.split("`")[1] for line in block.splitlines()
            if line.startswith("- `")}


def valid(observable: dict) -> bool:
    """Check an observable's value for its type, as CTIM means it."""
    import ipaddress
    import re
    from urllib.parse import urlsplit

    kind, value = observable["type"], observable["value"]
    if kind in ("ip", "ipv6"):
        address = ipaddress.ip_address(value)
        return address.version == (4 if kind == "ip" else 6) \
            and not address.is_loopback and not address.is_unspecified \
            and not any(address in ipaddress.ip_network(n) for n in (
                "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
                if ipaddress.ip_network(n).version == address.version)
    if kind in ("hostname", "domain"):
        return bool(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?",
                                 value)) and value.lower() not in ("n/a",
                                                                   "unknown")
    if kind == "url":
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname) \
            and not parts.query and not parts.password and len(value) <= 1024
    return kind in ("email", "user")


def test_an_infostealer_victim_leads_to_the_machine_and_the_site(post) -> None:
    body = observe(post, "infected@demo.test", "jane.doe@demo.test")
    stolen = [s for s in docs(body) if len(s["targets"]) == 2]
    assert len(stolen) == 7  # five of infected@, two of jane.doe
    names = vocabulary()
    for sighting in docs(body):
        for relation in sighting["relations"]:
            assert relation["relation"] in names
            assert relation["source"] == sighting["observables"][0]
            assert valid(relation["related"]), relation
        for target in sighting["targets"][1:]:
            assert target["type"] == "endpoint"
            assert all(valid(o) for o in target["observables"])
    records = {r["document_id"]: r
               for r in synthetic.records("infected@demo.test")}
    for sighting in stolen[:5]:
        record = records[sighting["external_ids"][0]]
        shown = {(o["type"], o["value"]) for o in sighting["targets"][1][
            "observables"]}
        assert ("hostname", record["user_hostname"]) in shown
        public = {a for a in record["ip_addresses"]
                  if a.startswith(("203.0.113.", "2001:db8"))}
        assert {v for k, v in shown if k in ("ip", "ipv6")} == public
        assert {r["related"]["value"] for r in sighting["relations"]
                if r["relation"] == "Sent_To"} == {
            record["target_url"], record["target_domain"]}
