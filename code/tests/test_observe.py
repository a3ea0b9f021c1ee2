"""POST /observe/observables against a mocked SpyCloud, HTTP in and out."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import responses
import stamina
from responses import matchers

from relay import ctim
from relay.concurrency import Future
from relay.factory import create_app

from .conftest import API, API_KEY
from .helpers import free_slots, page, wait_until

EMAIL = "jane@example.com"
RECORDS = API + "breach/data/emails/"
CATALOG = API + "breach/catalog/"


def rec(n: int, source: int = 1, day: int = 1, **extra: Any) -> dict:
    return {
        "document_id": f"doc-{n}", "source_id": source,
        "spycloud_publish_date": f"2020-01-{day:02d}T00:00:00Z",
        "severity": 20, "email": EMAIL, "password": f"pw-{n}", **extra,
    }


def uuid_of(n: int) -> str:
    """The uuid of catalog *n*: a real UUID, as SpyCloud sends."""
    return f"5b0d4a4e-0000-4000-8000-{n:012d}"


def cat(n: int, **extra: Any) -> dict:
    return {
        "id": n, "uuid": uuid_of(n), "title": f"Breach {n}",
        "description": f"About breach {n}", "site": f"site{n}.example",
        "spycloud_publish_date": "2019-12-01T00:00:00Z", "confidence": 2,
        "assets": {"email": 1}, **extra,
    }


def observe(client, auth, *values: str, kind: str = "email"):
    body = [{"type": kind, "value": v} for v in values]
    response = client.post("/observe/observables", json=body, headers=auth)
    assert response.status_code == 200
    return response.json


def sightings(body: dict) -> list[dict]:
    return body["data"]["sightings"]["docs"]


def test_one_email_two_round_trips(client, mocked, auth) -> None:
    mocked.get(RECORDS + EMAIL, json=page([rec(1, 7, 2), rec(2, 8, 3)]),
               match=[matchers.header_matcher({"X-API-Key": API_KEY})])
    mocked.get(CATALOG + "8,7", json=page([cat(7), cat(8)]))
    body = observe(client, auth, EMAIL)
    assert "errors" not in body
    data = body["data"]
    assert list(data) == ["sightings", "indicators", "relationships"]
    assert [d["count"] for d in data.values()] == [2, 2, 2]
    assert [s["external_ids"][0] for s in sightings(body)] == ["doc-2", "doc-1"]
    assert [i["title"] for i in data["indicators"]["docs"]] == [
        "Breach 8", "Breach 7"
    ]


def test_paging_across_three_pages(client, mocked, auth) -> None:
    mocked.get(RECORDS + EMAIL, json=page([rec(1)], "c1"),
               match=[matchers.query_string_matcher("")])
    mocked.get(RECORDS + EMAIL, json=page([rec(2)], "c2"),
               match=[matchers.query_param_matcher({"cursor": "c1"})])
    mocked.get(RECORDS + EMAIL, json=page([rec(3)]),
               match=[matchers.query_param_matcher({"cursor": "c2"})])
    mocked.get(CATALOG + "1", json=page([cat(1)]))
    body = observe(client, auth, EMAIL)
    assert len(sightings(body)) == 3
    assert "errors" not in body


def test_a_record_sent_twice_is_one_sighting(client, mocked, auth) -> None:
    mocked.get(RECORDS + EMAIL, json=page([rec(1), rec(2), rec(1)], "c1"))
    mocked.get(RECORDS + EMAIL, json=page([rec(1), rec(3)]),
               match=[matchers.query_param_matcher({"cursor": "c1"})])
    mocked.get(CATALOG + "1", json=page([cat(1)]))
    body = observe(client, auth, EMAIL)
    ids = [s["id"] for s in sightings(body)]
    assert len(ids) == len(set(ids)) == 3
    assert body["data"]["relationships"]["count"] == 3
    assert "errors" not in body


def test_repeated_cursor_stops(client, mocked, auth) -> None:
    mocked.get(RECORDS + EMAIL, json=page([rec(1)], "same"),
               match=[matchers.query_string_matcher("")])
    mocked.get(RECORDS + EMAIL, json=page([rec(2)], "same"),
               match=[matchers.query_param_matcher({"cursor": "same"})])
    mocked.get(CATALOG + "1", json=page([cat(1)]))
    body = observe(client, auth, EMAIL)
    assert len(sightings(body)) == 2
    assert len(mocked.calls) == 1 + 3  # JWKS + two pages + catalog


def test_page_cap_warns(client, mocked, auth, app) -> None:
    cap = app.extensions["relay"].settings.max_pages
    for n in range(cap):
        mocked.get(RECORDS + EMAIL, json=page([rec(n)], f"c{n + 1}"),
                   match=[matchers.query_string_matcher(
                       f"cursor=c{n}" if n else "")])
    mocked.get(CATALOG + "1", json=page([cat(1)]))
    body = observe(client, auth, EMAIL)
    assert len(sightings(body)) == cap
    assert body["errors"] == [{
        "type": "warning", "code": "too many results",
        "message": f"SpyCloud holds more records for {EMAIL} than the relay"
        f" reads ({cap} pages); older records were not read.",
    }]


def test_catalogs_batched_by_ten_without_repeats(client, mocked, auth) -> None:
    records = [rec(n, source=100 + n % 25, day=1 + n % 28) for n in range(60)]
    mocked.get(RECORDS + EMAIL, json=page(records))
    asked: list[list[str]] = []

    def catalogs(request):
        ids = request.path_url.rsplit("/", 1)[1].split(",")
        asked.append(ids)
        return 200, {}, json.dumps(page([cat(int(i)) for i in ids]))

    mocked.add_callback(responses.GET, re.compile(CATALOG + ".*"), catalogs)
    body = observe(client, auth, EMAIL)
    assert len(asked) == 3
    assert sorted(len(ids) for ids in asked) == [5, 10, 10]
    flat = [i for ids in asked for i in ids]
    assert len(flat) == len(set(flat)) == 25
    assert body["data"]["indicators"]["count"] == 25
    assert body["data"]["relationships"]["count"] == 60


def test_catalogs_cached_across_requests(client, mocked, auth) -> None:
    mocked.get(RECORDS + EMAIL, json=page([rec(1, 7)]))
    mocked.get(CATALOG + "7", json=page([cat(7)]))
    first = observe(client, auth, EMAIL)
    mocked.get(RECORDS + "bob@example.com", json=page([rec(2, 7)]))
    second = observe(client, auth, "bob@example.com")
    assert len(mocked.calls) == 1 + 3  # JWKS, records, catalog, records
    assert first["data"]["indicators"] == second["data"]["indicators"]


def test_missing_catalog_warns_and_keeps_the_rest(
        client, mocked, auth) -> None:
    mocked.get(RECORDS + EMAIL, json=page([rec(1, 7), rec(2, 8)]))
    mocked.get(CATALOG + "7,8", json=page([cat(8)]))
    body = observe(client, auth, EMAIL)
    assert body["errors"] == [{
        "type": "warning", "code": "not found",
        "message": "SpyCloud did not return results for 7",
    }]
    docs = {s["external_ids"][0]: s for s in sightings(body)}
    assert docs["doc-1"]["description"] == "Present in breach"
    assert "source_uri" not in docs["doc-1"]
    assert docs["doc-2"]["description"] == "Present in Breach 8"
    assert body["data"]["indicators"]["count"] == 1
    assert body["data"]["relationships"]["count"] == 1


def test_unusable_catalog_is_treated_as_missing(client, mocked, auth) -> None:
    mocked.get(RECORDS + EMAIL, json=page([rec(1, 7)]))
    mocked.get(CATALOG + "7", json=page([{"id": 7}]))
    body = observe(client, auth, EMAIL)
    assert body["errors"][0]["message"] == \
        "SpyCloud did not return results for 7"
    assert sightings(body)[0]["description"] == "Present in breach"


def test_fatal_error_on_one_email_keeps_the_others(
        client, mocked, auth) -> None:
    mocked.get(RECORDS + "a@example.com", json=page([rec(1, 7)]))
    mocked.get(RECORDS + "b@example.com", status=404, json={})
    mocked.get(RECORDS + "c@example.com", json=page([rec(2, 7)]))
    mocked.get(CATALOG + "7", json=page([cat(7)]))
    body = observe(client, auth, "a@example.com", "b@example.com",
                   "c@example.com")
    assert body["errors"] == [{
        "type": "fatal", "code": "not found",
        "message": "The Spycloud not found.",
    }]
    assert [s["observables"][0]["value"] for s in sightings(body)] == [
        "a@example.com", "c@example.com"
    ]


def test_answers_follow_the_order_sent(client, mocked, auth) -> None:
    names = [f"user{n}@example.com" for n in (3, 1, 2)]
    for n, name in enumerate(names):
        mocked.get(RECORDS + name, json=page([rec(n, 7)]))
    mocked.get(CATALOG + "7", json=page([cat(7)]))
    body = observe(client, auth, *names)
    assert [s["observables"][0]["value"] for s in sightings(body)] == names


def test_catalog_failure_keeps_sightings(client, mocked, auth) -> None:
    mocked.get(RECORDS + EMAIL, json=page([rec(1, 7)]))
    mocked.get(CATALOG + "7", status=404)
    body = observe(client, auth, EMAIL)
    assert body["errors"] == [{
        "type": "fatal", "code": "not found",
        "message": "The Spycloud not found.",
    }]
    assert sightings(body)[0]["description"] == "Present in breach"


@pytest.mark.parametrize(("claim", "expected"), [
    (None, 100), (3, 3), ("4", 4), ("many", 100), (0, 100), (-2, 100),
])
def test_entity_limit_newest_first(
        client, mocked, make_token, jwks, claim, expected) -> None:
    records = [rec(n, day=1 + n % 28, source=1) for n in range(120)]
    mocked.get(RECORDS + EMAIL, json=page(records))
    mocked.get(CATALOG + "1", json=page([cat(1)]))
    token = make_token(CTR_ENTITIES_LIMIT=claim)
    body = observe(client, {"Authorization": f"Bearer {token}"}, EMAIL)
    docs = sightings(body)
    assert len(docs) == expected
    times = [d["observed_time"]["start_time"] for d in docs]
    assert times == sorted(times, reverse=True)
    assert times[0] == "2020-01-28T00:00:00.000000Z"


def test_only_catalogs_of_kept_records_are_fetched(
        client, mocked, make_token, jwks) -> None:
    mocked.get(RECORDS + EMAIL, json=page([rec(1, 5, 1), rec(2, 6, 9)]))
    mocked.get(CATALOG + "6", json=page([cat(6)]))
    token = make_token(CTR_ENTITIES_LIMIT=1)
    body = observe(client, {"Authorization": f"Bearer {token}"}, EMAIL)
    assert body["data"]["sightings"]["count"] == 1


def test_400_means_no_data(client, mocked, auth) -> None:
    mocked.get(RECORDS + EMAIL, status=400, json={"message": "bad"})
    assert observe(client, auth, EMAIL) == {"data": {}}


def test_no_records(client, mocked, auth) -> None:
    mocked.get(RECORDS + EMAIL, json=page([]))
    assert observe(client, auth, EMAIL) == {"data": {}}


def test_unusable_records_are_skipped_with_a_warning(
        client, mocked, auth) -> None:
    bad = [{"document_id": "x"}, rec(2, day=40), "text"]
    mocked.get(RECORDS + EMAIL, json=page([rec(1, 7), *bad]))
    mocked.get(CATALOG + "7", json=page([cat(7)]))
    body = observe(client, auth, EMAIL)
    assert len(sightings(body)) == 1
    assert body["errors"] == [{
        "type": "warning", "code": "invalid result",
        "message": f"SpyCloud returned 3 unusable record(s) for {EMAIL};"
        " they are left out.",
    }]


@pytest.mark.parametrize(("reply", "code", "message"), [
    ({"status": 404}, "not found", "The Spycloud not found."),
    ({"status": 429}, "too many requests",
     "Too many requests have been made to Spycloud. Please, try again later."),
    ({"status": 429,
      "headers": {"x-amzn-ErrorType": "TooManyRequestsException"}},
     "too many requests",
     "Too many requests have been made to Spycloud. Please, try again later."),
    ({"status": 429,
      "headers": {"x-amzn-ErrorType": "LimitExceededException"}},
     "too many requests",
     "The SpyCloud API quota of this key is used up. Please, try again when"
     " SpyCloud has renewed it."),
    ({"status": 500}, "internal error", "The Spycloud internal error."),
    ({"status": 502}, "unknown", "SpyCloud answered 502 Bad Gateway."),
    ({"status": 503}, "unknown", "SpyCloud answered 503 Service Unavailable."),
    ({"status": 504}, "unknown", "SpyCloud answered 504 Gateway Timeout."),
    ({"status": 418}, "unknown", "SpyCloud answered with unexpected status 418."),
    ({"status": 403, "json": {"message": "Forbidden"},
      "headers": {"SpyCloud-Error": "Invalid API key"}},
     "authorization error", "Authorization failed: Invalid API key"),
    ({"body": "<html>oops</html>"}, "unknown",
     "SpyCloud answered with a body that is not valid JSON."),
    ({"body": '{"results": [1, 2'}, "unknown",
     "SpyCloud answered with a body that is not valid JSON."),
    ({"json": {"results": "none"}}, "unknown",
     "SpyCloud answered with an unexpected body: 'results' is not a list."),
    ({"json": [1, 2]}, "unknown",
     "SpyCloud answered with an unexpected body: the answer is not a JSON"
     " object."),
    ({"body": requests.exceptions.ConnectTimeout()}, "unknown",
     "SpyCloud did not answer in time."),
    ({"body": requests.exceptions.ReadTimeout()}, "unknown",
     "SpyCloud did not answer in time."),
    ({"body": requests.exceptions.ConnectionError()}, "unknown",
     "The relay could not connect to SpyCloud."),
    ({"body": requests.exceptions.SSLError(
        "certificate verify failed: self-signed certificate")}, "unknown",
     "Unable to verify SSL certificate: certificate verify failed:"
     " self-signed certificate"),
    ({"body": requests.exceptions.InvalidHeader("bad")}, "unknown",
     "The call to SpyCloud failed: InvalidHeader."),
])
def test_spycloud_error_table(
        client, mocked, auth, reply, code, message) -> None:
    retried = _retried(reply)
    for _ in range(3 if retried else 1):
        mocked.get(RECORDS + EMAIL, **reply)
    assert observe(client, auth, EMAIL) == {
        "errors": [{"type": "fatal", "code": code, "message": message}]
    }
    assert len(mocked.calls) == 1 + (3 if retried else 1)


def _retried(reply: dict) -> bool:
    """Say whether the relay retries this reply (three attempts in tests)."""
    body = reply.get("body")
    if isinstance(body, requests.exceptions.SSLError):
        return False
    if isinstance(body, (requests.Timeout, requests.ConnectionError)):
        return True
    if "LimitExceeded" in str(reply.get("headers")):
        return False
    return reply.get("status") in (429, 500, 502, 503, 504)


def test_retry_then_success(client, mocked, auth) -> None:
    mocked.get(RECORDS + EMAIL, status=500)
    mocked.get(RECORDS + EMAIL, status=429, headers={"Retry-After": "1"})
    mocked.get(RECORDS + EMAIL, json=page([rec(1, 7)]))
    mocked.get(CATALOG + "7", json=page([cat(7)]))
    body = observe(client, auth, EMAIL)
    assert "errors" not in body
    assert len(sightings(body)) == 1


@pytest.mark.parametrize(("value", "path"), [
    ("a/../b@example.com", "a%2F..%2Fb@example.com"),
    ("a?x=1@example.com", "a%3Fx%3D1@example.com"),
    ("a#frag@example.com", "a%23frag@example.com"),
    ("a%2fb@example.com", "a%252fb@example.com"),
    ("%2e%2e@example.com", "%252e%252e@example.com"),
    ("Jane@Example.COM", "jane@example.com"),
])
def test_email_is_one_encoded_path_segment(
        client, mocked, auth, value, path) -> None:
    mocked.get(RECORDS + path, json=page([]))
    assert observe(client, auth, value) == {"data": {}}
    assert mocked.calls[-1].request.path_url == \
        "/enterprise-v2/breach/data/emails/" + path


def test_duplicates_queried_once_types_case_insensitive(
        client, mocked, auth) -> None:
    mocked.get(RECORDS + EMAIL, json=page([rec(1, 7)]))
    mocked.get(CATALOG + "7", json=page([cat(7)]))
    body = client.post("/observe/observables", headers=auth, json=[
        {"type": "EMAIL", "value": EMAIL},
        {"type": "domain", "value": "example.com"},
        {"type": "Email", "value": EMAIL},
    ]).json
    assert body["data"]["sightings"]["count"] == 1


def test_sighting_ids_stable_across_calls(client, mocked, auth) -> None:
    for _ in range(2):
        mocked.get(RECORDS + EMAIL, json=page([rec(1, 7)]))
    mocked.get(CATALOG + "7", json=page([cat(7)]))
    first = observe(client, auth, EMAIL)
    second = observe(client, auth, EMAIL)
    assert first == second
    assert first["data"]["indicators"]["docs"][0]["id"] == \
        ctim.indicator_id(7)


def test_email_cap_warns(app, client, mocked, auth) -> None:
    cap = app.extensions["relay"].settings.max_emails_per_request
    values = [f"u{n}@example.com" for n in range(cap + 5)]
    for value in values[:cap]:
        mocked.get(RECORDS + value, json=page([]))
    body = observe(client, auth, *values)
    assert body == {"errors": [{
        "type": "warning", "code": "too many observables",
        "message": f"Only the first {cap} of {cap + 5} observables were"
        " looked up.",
    }]}


def test_breach_shared_by_two_emails_gives_one_indicator(
        client, mocked, auth) -> None:
    mocked.get(RECORDS + "a@example.com", json=page([rec(1, 7), rec(2, 8)]))
    mocked.get(RECORDS + "b@example.com", json=page([rec(3, 7)]))
    mocked.add_callback(responses.GET, re.compile(CATALOG + ".*"),
                        lambda request: (200, {}, json.dumps(page([
                            cat(int(i)) for i in
                            request.path_url.rsplit("/", 1)[1].split(",")]))))
    body = observe(client, auth, "a@example.com", "b@example.com")
    data = body["data"]
    assert [d["count"] for d in data.values()] == [3, 2, 3]
    for kind in data.values():
        ids = [doc["id"] for doc in kind["docs"]]
        assert len(ids) == len(set(ids)) == kind["count"]
    assert [i["id"] for i in data["indicators"]["docs"]] == [
        ctim.indicator_id(7), ctim.indicator_id(8)
    ]


def test_case_variants_are_one_lookup_under_the_first_spelling(
        client, mocked, auth) -> None:
    mocked.get(RECORDS + "jane.doe@example.com", json=page([rec(1, 7)]))
    mocked.get(CATALOG + "7", json=page([cat(7)]))
    body = observe(client, auth, "Jane.Doe@Example.com", "jane.doe@example.com",
                   "JANE.DOE@EXAMPLE.COM")
    assert [s["observables"] for s in sightings(body)] == [
        [{"type": "email", "value": "Jane.Doe@Example.com"}]
    ]
    assert len([c for c in mocked.calls if "/emails/" in c.request.url]) == 1


def test_a_failing_email_leaves_the_others_whole(client, mocked, auth) -> None:
    mocked.get(RECORDS + "a@example.com", json=page([rec(1, 7)]))
    mocked.get(RECORDS + "b@example.com",
               body=requests.exceptions.ReadTimeout())
    mocked.get(CATALOG + "7", json=page([cat(7)]))
    body = observe(client, auth, "a@example.com", "b@example.com")
    assert body["errors"] == [{"type": "fatal", "code": "unknown",
                               "message": "SpyCloud did not answer in time."}]
    only = sightings(body)[0]
    assert only["source_uri"] == \
        "https://portal.spycloud.com/breach/catalog/" + uuid_of(7)
    assert only["relations"][0]["relation"] == "Leaked_From"
    assert body["data"]["indicators"]["count"] == 1
    assert body["data"]["relationships"]["count"] == 1


def test_missing_catalog_is_remembered_across_requests(
        client, mocked, auth) -> None:
    mocked.get(RECORDS + "a@example.com", json=page([rec(1, 7)]))
    mocked.get(RECORDS + "b@example.com", json=page([rec(2, 7)]))
    mocked.get(CATALOG + "7", json=page([]))
    for email in ("a@example.com", "b@example.com"):
        assert observe(client, auth, email)["errors"] == [{
            "type": "warning", "code": "not found",
            "message": "SpyCloud did not return results for 7",
        }]
    assert len([c for c in mocked.calls if "/catalog/" in c.request.url]) == 1


def test_operator_caps_the_entity_limit(
        settings, mocked, make_token, jwks) -> None:
    app = create_app(dataclasses.replace(settings, max_entities_limit=5))
    mocked.get(RECORDS + EMAIL, json=page([rec(n, day=1 + n) for n in range(9)]))
    mocked.get(CATALOG + "1", json=page([cat(1)]))
    token = make_token(CTR_ENTITIES_LIMIT=50)
    body = observe(app.test_client(), {"Authorization": f"Bearer {token}"},
                   EMAIL)
    assert len(sightings(body)) == 5


def test_options_of_thousands_of_digits_are_warned_not_raised(
        client, mocked, make_token, jwks) -> None:
    mocked.get(RECORDS + EMAIL, json=page([rec(1)]))
    mocked.get(CATALOG + "1", json=page([cat(1)]))
    token = make_token(CTR_ENTITIES_LIMIT="9" * 5000, MIN_SEVERITY="2" * 5000,
                       LOOKBACK_DAYS="7" * 5000)
    body = observe(client, {"Authorization": f"Bearer {token}"}, EMAIL)
    assert len(sightings(body)) == 1
    assert [(e["code"], e["message"][:40]) for e in body["errors"]] == [
        ("invalid argument", "The module option MIN_SEVERITY has an un"),
        ("invalid argument", "The module option LOOKBACK_DAYS has an u")]


def test_an_email_with_invisible_characters_is_not_looked_up(
        client, mocked) -> None:
    body = observe(client, {}, "jane\u200b@example.com",
                   "\u202emoc.elpmaxe@enaj")
    assert body == {"errors": [{
        "type": "warning", "code": "invalid argument",
        "message": f"{v!r} is not a valid email address; it was not looked"
        " up."} for v in ("jane\u200b@example.com", "\u202emoc.elpmaxe@enaj")]}
    assert len(mocked.calls) == 0


def concurrency_probe(delay: float) -> tuple[Callable, dict[str, int]]:
    """A SpyCloud answer that takes *delay* s and tracks calls in flight."""
    lock = threading.Lock()
    seen = {"now": 0, "peak": 0}

    def answer(request):
        with lock:
            seen["now"] += 1
            seen["peak"] = max(seen["peak"], seen["now"])
        time.sleep(delay)
        with lock:
            seen["now"] -= 1
        return 200, {}, json.dumps(page([]))
    return answer, seen


def test_calls_in_flight_never_exceed_the_per_key_cap(
        settings, mocked, auth) -> None:
    app = create_app(dataclasses.replace(settings, max_concurrency=3))
    answer, seen = concurrency_probe(0.05)
    mocked.add_callback(responses.GET, re.compile(RECORDS + ".*"), answer)
    with ThreadPoolExecutor(2) as pool:  # two requests of one customer
        bodies = list(pool.map(
            lambda prefix: observe(app.test_client(), auth, *[
                f"{prefix}{n}@example.com" for n in range(8)]),
            ("a", "b"),
        ))
    assert bodies == [{"data": {}}] * 2
    assert seen["peak"] == 3


def served_in_order(mocked, body_of: Callable[[Any], dict]) -> list[str]:
    """Answer every SpyCloud call after 50 ms with *body_of*(request);
    return the last path segments of the calls, in the order served."""
    served: list[str] = []

    def answer(request):
        served.append(request.path_url.rsplit("/", 1)[1])
        time.sleep(0.05)
        return 200, {}, json.dumps(body_of(request))

    mocked.add_callback(responses.GET, re.compile(API + ".*"), answer)
    return served


def test_a_requests_observables_take_turns_with_its_keys_other_requests(
        settings, mocked, auth) -> None:
    app = create_app(dataclasses.replace(settings, max_concurrency=2))
    served = served_in_order(mocked, lambda request: page([]))
    with ThreadPoolExecutor(2) as pool:
        big = pool.submit(observe, app.test_client(), auth,
                          *[f"a{n}@example.com" for n in range(10)])
        wait_until(lambda: len(served) >= 2)  # its first two calls are out
        small = pool.submit(observe, app.test_client(), auth,
                            "b@example.com")
        assert big.result() == small.result() == {"data": {}}
    # At most the cap of the big request's lookups wait for the key's
    # slots at once, so the small one is served next, not eleventh.
    assert served.index("b@example.com") <= 3, served


def test_a_catalog_call_goes_before_the_requests_waiting_record_calls(
        settings, mocked, auth) -> None:
    app = create_app(dataclasses.replace(settings, max_concurrency=2))
    served = served_in_order(mocked, lambda request: page(
        [cat(7)] if "/catalog/" in request.path_url else [rec(1, 7)]))
    body = observe(app.test_client(), auth,
                   *[f"a{n}@example.com" for n in range(6)])
    assert body["data"]["indicators"]["count"] == 1
    # Two calls at a time: once the first two emails' records came, their
    # catalog goes out in the second pair of calls, not after the others.
    assert served.index("7") <= 3, served


def test_an_observable_keeps_its_slot_for_its_catalogs_call(
        settings, mocked, auth, monkeypatch) -> None:
    app = create_app(dataclasses.replace(settings, max_concurrency=2))
    limits = app.extensions["relay"].spycloud.transport.limits
    taken = []
    acquire = limits.acquire
    monkeypatch.setattr(limits, "acquire", lambda digest, timeout: (
        taken.append(digest), acquire(digest, timeout))[1])
    mocked.get(RECORDS + EMAIL, json=page([rec(1, 7)]))
    mocked.get(CATALOG + "7", json=page([cat(7)]))
    assert observe(app.test_client(), auth, EMAIL)["data"]
    calls = [c for c in mocked.calls if c.request.url.startswith(API)]
    assert len(calls) == 2 and len(taken) == 1  # one slot for both
    assert free_slots(app, API_KEY) == 2  # and given back


@pytest.mark.parametrize("case", [
    "answered", "cached", "catalog call failed", "second page failed",
    "identifier refused", "records unusable",
])
def test_a_kept_slot_is_given_back_whatever_happens(
        settings, mocked, auth, case) -> None:
    # One slot for four observables: each must give it back as soon as it
    # has no call left, or the next waits out the budget.
    app = create_app(dataclasses.replace(settings, max_concurrency=1,
                                         request_budget=2))
    client = app.test_client()

    def records(request):
        if case == "identifier refused":
            return 400, {}, ""
        if case == "records unusable":
            return 200, {}, '{"results": "nope"}'
        if "cursor=c2" not in request.path_url:
            return 200, {}, json.dumps({"cursor": "c2",
                                        "results": [rec(1, 7)]})
        if case == "second page failed":
            return 500, {}, ""
        return 200, {}, json.dumps(page([rec(2, 8, day=3)]))

    def catalogs(request):
        if case == "catalog call failed":
            return 500, {}, ""
        return 200, {}, json.dumps(page([cat(7), cat(8)]))

    mocked.add_callback(responses.GET, re.compile(RECORDS + ".*"), records)
    if case in ("answered", "cached", "catalog call failed"):
        mocked.add_callback(responses.GET, re.compile(CATALOG + ".*"),
                            catalogs)
    emails = [f"a{n}@example.com" for n in range(4)]
    body = observe(client, auth, *emails)
    if case == "cached":  # the second time, no catalog call
        body = observe(client, auth, *emails)
    messages = {e["message"] for e in body.get("errors", [])}
    assert not any("budget" in m for m in messages), messages
    assert ("errors" in body) == (case not in (
        "answered", "cached", "identifier refused"))
    assert free_slots(app, API_KEY) == 1


def test_a_slot_handed_to_catalogs_never_fetched_is_given_back(
        settings, mocked, auth) -> None:
    app = create_app(dataclasses.replace(settings, max_concurrency=1,
                                         request_budget=1))

    class Stalled:  # a catalog cache that never answers
        def lookup(self, owner, ids):
            Future().wait(30)

        def store(self, owner, found, missing):
            raise AssertionError("nothing was fetched")

    app.extensions["relay"].lookup.catalog_cache = Stalled()
    mocked.get(RECORDS + EMAIL, json=page([rec(1, 7)]))
    body = observe(app.test_client(), auth, EMAIL)
    assert body["errors"][0]["message"] == (
        "The relay's time budget of 1 s ran out before SpyCloud answered.")
    assert free_slots(app, API_KEY) == 1  # the records call's, stopped in the hand


def test_one_customer_does_not_wait_for_another(
        settings, mocked, make_token, jwks) -> None:
    app = create_app(dataclasses.replace(settings, max_concurrency=2))
    release = threading.Event()

    def answer(request):
        if request.headers["X-API-Key"] == "key-a":
            release.wait(10)
        return 200, {}, json.dumps(page([]))

    mocked.add_callback(responses.GET, re.compile(RECORDS + ".*"), answer)
    token_a = {"Authorization": f"Bearer {make_token(key='key-a')}"}
    token_b = {"Authorization": f"Bearer {make_token(key='key-b')}"}
    with ThreadPoolExecutor(1) as pool:
        big = pool.submit(observe, app.test_client(), token_a,
                          *[f"a{n}@example.com" for n in range(40)])
        try:
            assert observe(app.test_client(), token_b, EMAIL) == {"data": {}}
            assert not big.done()  # A is still waiting on its SpyCloud calls
        finally:
            release.set()
        assert big.result(10) == {"data": {}}


def test_retry_after_is_the_wait(client, mocked, auth) -> None:
    waits: list[float] = []
    mocked.get(RECORDS + EMAIL, status=429, headers={"Retry-After": "0.01"})
    mocked.get(RECORDS + EMAIL, json=page([]))
    hooks = stamina.instrumentation.get_on_retry_hooks()
    stamina.set_testing(False)
    stamina.instrumentation.set_on_retry_hooks(
        [lambda details: waits.append(details.wait_for)])
    try:
        assert observe(client, auth, EMAIL) == {"data": {}}
    finally:
        stamina.instrumentation.set_on_retry_hooks(hooks)
        stamina.set_testing(True, attempts=3)
    assert waits == [0.01]


def test_the_answer_cap_keeps_each_observables_newest(
        settings, mocked, make_token, jwks) -> None:
    app = create_app(dataclasses.replace(settings, max_answer_sightings=4))
    auth = {"Authorization": f"Bearer {make_token(CTR_ENTITIES_LIMIT=10)}"}
    for user in ("a", "b"):
        mocked.get(RECORDS + f"{user}@example.com", json=page(
            [rec(n, 1, day=n, email=f"{user}@example.com")
             for n in range(1, 6)]))
    mocked.get(CATALOG + "1", json=page([cat(1)]))
    body = observe(app.test_client(), auth, "a@example.com", "b@example.com")
    # Two observables share four sightings: each keeps its newest two.
    assert [(s["observables"][0]["value"], s["external_ids"][0])
            for s in sightings(body)] == [
        ("a@example.com", "doc-5"), ("a@example.com", "doc-4"),
        ("b@example.com", "doc-5"), ("b@example.com", "doc-4")]
    assert body["errors"] == [{
        "type": "warning", "code": "too many results",
        "message": "One answer holds at most 4 sightings: each observable"
        " kept its newest 2, and 6 older sighting(s) were left out."}]


def test_the_answer_cap_says_nothing_when_all_fit(
        settings, mocked, make_token, jwks) -> None:
    app = create_app(dataclasses.replace(settings, max_answer_sightings=4))
    auth = {"Authorization": f"Bearer {make_token(CTR_ENTITIES_LIMIT=10)}"}
    mocked.get(RECORDS + EMAIL, json=page([rec(1), rec(2)]))
    mocked.get(RECORDS + "b@example.com", json=page([rec(3)]))
    mocked.get(CATALOG + "1", json=page([cat(1)]))
    body = observe(app.test_client(), auth, EMAIL, "b@example.com")
    assert "errors" not in body
    assert len(sightings(body)) == 3


def test_a_mapping_failure_loses_only_its_observable(
        client, mocked, auth, monkeypatch, caplog) -> None:
    real = ctim.observe

    def observe_or_fail(observable, *args: Any, **kwargs: Any):
        if observable[1] == "a@example.com":
            raise KeyError("a bug in the mapping")
        return real(observable, *args, **kwargs)

    monkeypatch.setattr(ctim, "observe", observe_or_fail)
    for user in ("a", "b"):
        mocked.get(RECORDS + f"{user}@example.com",
                   json=page([rec(1, 7, email=f"{user}@example.com")]))
    mocked.get(CATALOG + "7", json=page([cat(7)]))
    body = observe(client, auth, "a@example.com", "b@example.com")
    assert body["errors"] == [{
        "type": "fatal", "code": "unknown",
        "message": "An unexpected error occurred while answering for"
        " a@example.com."}]
    assert [s["observables"][0]["value"] for s in sightings(body)] == [
        "b@example.com"]
    assert body["data"]["indicators"]["count"] == 1
    assert "a bug in the mapping" in caplog.text


def test_a_spycloud_body_over_the_cap_is_an_error_for_its_observable(
        settings, mocked, auth) -> None:
    app = create_app(dataclasses.replace(settings,
                                         spycloud_max_body_bytes=2048))
    mocked.get(RECORDS + "big@example.com", json=page(
        [rec(n, 1, email="big@example.com", filler="x" * 500)
         for n in range(10)]))
    mocked.get(RECORDS + EMAIL, json=page([rec(1, 1)]))
    mocked.get(CATALOG + "1", json=page([cat(1)]))
    body = observe(app.test_client(), auth, "big@example.com", EMAIL)
    assert body["errors"] == [{
        "type": "fatal", "code": "unknown",
        "message": "SpyCloud answered with a body larger than 2,048 bytes."}]
    assert [s["observables"][0]["value"] for s in sightings(body)] == [EMAIL]
