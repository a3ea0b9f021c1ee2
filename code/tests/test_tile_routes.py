"""The tile routes, HTTP in and out, against a mocked SpyCloud."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import responses
from responses import matchers

from relay.factory import create_app

from .conftest import API, API_KEY
from .helpers import free_slots, page

NOW = dt.datetime(2026, 3, 15, 12, 0, tzinfo=dt.timezone.utc)
WATCHLIST = API + "breach/data/watchlist"
CATALOG = API + "breach/catalog/"


def rec(n: int, day: str, severity: int = 20, source: int = 7) -> dict:
    return {"email": f"u{n % 3}@corp.example", "document_id": f"d{n}",
            "source_id": source, "severity": severity,
            "spycloud_publish_date": f"{day}T00:00:00Z"}


@pytest.fixture
def app(settings):
    return create_app(dataclasses.replace(settings, tiles_max_pages=2),
                      now=lambda: NOW)


def invalid(message: str) -> dict:
    return {"errors": [{"type": "fatal", "code": "invalid argument",
                        "message": f"Invalid JSON payload received. {message}"}]}


@pytest.mark.parametrize(("path", "payload", "message"), [
    ("/tiles/tile-data", {"tile_id": "spycloud-top-breaches"},
     '{"period": ["Missing data for required field."]}'),
    ("/tiles/tile-data", {"tile_id": "", "period": "last_7_days"},
     '{"tile_id": ["Must be one of: spycloud-exposure-summary,'
     ' spycloud-exposures-by-severity, spycloud-new-exposures,'
     ' spycloud-top-breaches, spycloud-most-exposed."]}'),
    ("/tiles/tile-data", {"tile_id": "spycloud-top-breaches",
                          "period": "last_year"},
     '{"period": ["Must be one of: last_24_hours, last_7_days, last_30_days,'
     ' last_60_days, last_90_days."]}'),
    ("/tiles/tile-data", {"tile_id": "spycloud-top-breaches",
                          "period": "last_7_days", "org": "x"},
     '{"org": ["Unknown field."]}'),
    ("/tiles/tile", {"tile_id": "nope"},
     '{"tile_id": ["Must be one of: spycloud-exposure-summary,'
     ' spycloud-exposures-by-severity, spycloud-new-exposures,'
     ' spycloud-top-breaches, spycloud-most-exposed."]}'),
    ("/tiles/tile", [], '{"_schema": ["Invalid input type."]}'),
])
def test_bad_requests_name_the_problem(client, mocked, path, payload,
                                       message) -> None:
    assert client.post(path, json=payload).json == invalid(message)
    assert len(mocked.calls) == 0


def test_body_that_is_not_json(client, mocked) -> None:
    answer = client.post("/tiles/tile-data", data=b"{nope",
                         content_type="application/json")
    assert answer.json == invalid("The body is not JSON.")


def test_tiles_need_the_token(client, mocked) -> None:
    assert client.post("/tiles").json["errors"][0]["message"] == \
        "Authorization failed: Authorization header is missing"


def test_tile_definitions(client, mocked, auth) -> None:
    listed = client.post("/tiles", headers=auth).json["data"]
    assert [t["id"] for t in listed][:2] == [
        "spycloud-exposure-summary", "spycloud-exposures-by-severity"]
    one = client.post("/tiles/tile", headers=auth,
                      json={"tile_id": "spycloud-most-exposed"}).json
    assert one["data"]["type"] == "markdown"


@pytest.mark.parametrize("body", [
    None, b"{}", b"null", b'{"tile_id": "x", "anything": [1, 2]}', b"[]",
    b"not json at all"])
def test_the_tile_list_ignores_its_body(client, mocked, auth, body) -> None:
    listed = client.post("/tiles", data=body, content_type="application/json",
                         headers=auth)
    assert len(listed.json["data"]) == 5
    assert "errors" not in listed.json


def summary(client, auth, period: str = "last_7_days") -> dict:
    return client.post("/tiles/tile-data", headers=auth, json={
        "tile_id": "spycloud-exposure-summary", "period": period}).json


def test_watchlist_since_the_period_start_filtered_exactly(
        client, mocked, auth) -> None:
    mocked.get(WATCHLIST, json=page([
        rec(1, "2026-03-14"), rec(2, "2026-03-08"), rec(3, "2026-03-09")]),
        match=[matchers.query_param_matcher({"since": "2026-03-08"})])
    mocked.get(CATALOG + "7", json=page([{"id": 7, "uuid": "u7",
                                          "title": "Seven"}]))
    body = summary(client, auth)
    assert "errors" not in body
    # 2026-03-08 00:00 is before the window's start, 03-08 12:00.
    assert body["data"]["data"][1]["value"] == 2


def test_a_watchlist_record_sent_twice_counts_once(
        client, mocked, auth) -> None:
    mocked.get(WATCHLIST, json=page([
        rec(1, "2026-03-14"), rec(1, "2026-03-14"), rec(2, "2026-03-13")]))
    mocked.get(CATALOG + "7", json=page([{"id": 7, "title": "Seven"}]))
    assert summary(client, auth)["data"]["data"][1]["value"] == 2


def test_page_cap_and_missing_catalog_warn(app, client, mocked,
                                           auth) -> None:
    mocked.get(WATCHLIST, json=page([rec(1, "2026-03-14")], "c1"),
               match=[matchers.query_param_matcher({"since": "2026-03-08"})])
    mocked.get(WATCHLIST, json=page([rec(2, "2026-03-13")], "c2"),
               match=[matchers.query_param_matcher(
                   {"since": "2026-03-08", "cursor": "c1"})])
    mocked.get(CATALOG + "7", json=page([]))
    capped = {"type": "warning", "code": "too many results",
              "message": "The watchlist holds more records than the relay"
              " reads (2 pages); the figures cover the newest pages read."}
    body = summary(client, auth)
    assert body["data"]["data"][1]["value"] == 2
    assert body["errors"] == [capped]  # the missing catalog is not its news
    top = client.post("/tiles/tile-data", headers=auth, json={
        "tile_id": "spycloud-top-breaches", "period": "last_7_days"}).json
    assert top["errors"] == [capped, {
        "type": "warning", "code": "not found",
        "message": "SpyCloud did not return results for 7"}]
    # The watchlist's pages shared one slot of the key's cap, given back.
    cap = app.extensions["relay"].settings.max_concurrency
    assert free_slots(app, API_KEY) == cap


def test_watchlist_failure_is_the_answer(client, mocked, auth) -> None:
    mocked.get(WATCHLIST, status=404)
    assert summary(client, auth) == {"errors": [{
        "type": "fatal", "code": "not found",
        "message": "The Spycloud not found."}]}


def test_five_tiles_at_once_read_the_watchlist_once(
        client, mocked, auth) -> None:
    reads = []
    lock = threading.Lock()

    flight = client.application.extensions["relay"].dashboard.aggregates

    def watchlist(request):
        with lock:
            reads.append(request.url)
        # Answer the first read once the four other tiles wait for it.
        deadline = time.monotonic() + 5
        while len(reads) == 1 and flight.waiting() < 4 \
                and time.monotonic() < deadline:
            time.sleep(0.005)
        return 200, {}, json.dumps(page([rec(1, "2026-03-14")]))

    mocked.add_callback(responses.GET, re.compile(WATCHLIST + ".*"),
                        watchlist)
    mocked.get(CATALOG + "7", json=page([{"id": 7, "uuid": "u7",
                                          "title": "Seven"}]))
    tile_ids = ["spycloud-exposure-summary", "spycloud-exposures-by-severity",
                "spycloud-new-exposures", "spycloud-top-breaches",
                "spycloud-most-exposed"]
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(
            lambda tile_id: client.application.test_client().post(
                "/tiles/tile-data", headers=auth,
                json={"tile_id": tile_id, "period": "last_30_days"}).json,
            tile_ids))
    assert all("errors" not in answer for answer in answers)
    assert len(reads) == 1
    summary(client, auth, "last_30_days")  # cached: no new read
    assert len(reads) == 1
    summary(client, auth, "last_90_days")  # another period: its own read
    assert len(reads) == 2


@pytest.mark.parametrize("path", ["/tiles/tile", "/tiles/tile-data"])
def test_a_body_of_many_fields_gets_a_small_answer(client, mocked,
                                                   path) -> None:
    body = {f"f{n}": n for n in range(60_000)}  # under the 1 MiB cap
    response = client.post(path, json=body)
    assert len(response.data) < 1024
    message = response.json["errors"][0]["message"]
    assert message.startswith("Invalid JSON payload received. The body has"
                              " 60,000 fields; a tile takes tile_id")
    assert len(mocked.calls) == 0
