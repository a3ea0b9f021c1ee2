"""POST /refer/observables and the records cache, HTTP in and out."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from responses import matchers

from relay.factory import create_app

from .test_observe import CATALOG, RECORDS, cat, page, rec, uuid_of

SEARCH_URL = "https://portal.spycloud.com/watchlist/records/view/all"


def refer(client, auth, *observables: tuple[str, str]) -> dict:
    response = client.post("/refer/observables", headers=auth, json=[
        {"type": kind, "value": value} for kind, value in observables])
    assert response.status_code == 200
    return response.json


# What a person reads for each type, written out.
READ_AS = {"email": "email address", "user": "username",
           "ip": "IPv4 address", "ipv6": "IPv6 address"}


def search(kind: str, quoted: str) -> dict:
    return {
        "id": f"ref-spycloud-search-{kind}-{quoted}",
        "title": f"Search SpyCloud for this {READ_AS[kind]}",
        "description": "Open the SpyCloud portal's breach records to look up"
        f" this {READ_AS[kind]}",
        "url": SEARCH_URL,
        "categories": ["Search", "SpyCloud"],
    }


def browse(n: int, kind: str = "email") -> dict:
    return {
        "id": f"ref-spycloud-detail-breach-{uuid_of(n)}",
        "title": f"Browse breach: Breach {n}",
        "description": f"SpyCloud's description of Breach {n}, in which"
        f" this {READ_AS[kind]} appears",
        "url": f"https://portal.spycloud.com/breach/catalog/{uuid_of(n)}",
        "categories": ["Browse", "SpyCloud"],
    }


def test_search_and_five_newest_breaches(client, mocked, auth) -> None:
    records = [rec(n, source=n, day=n) for n in range(1, 8)]
    mocked.get(RECORDS + "a.b@example.com", json=page(records))
    mocked.get(CATALOG + "7,6,5,4,3,2,1",
               json=page([cat(n) for n in range(1, 8)]))
    assert refer(client, auth, ("email", "A.B@example.com")) == {"data": [
        search("email", "A.B%40example.com"),
        browse(7), browse(6), browse(5), browse(4), browse(3),
    ]}


def test_search_links_stay_when_spycloud_fails(client, mocked, auth) -> None:
    mocked.get(API_IPS + "203.0.113.5", status=500)
    mocked.get(API_IPS + "203.0.113.5", status=500)
    mocked.get(API_IPS + "203.0.113.5", status=500)
    assert refer(client, auth, ("ip", "203.0.113.5")) == {
        "data": [search("ip", "203.0.113.5")],
        "errors": [{"type": "fatal", "code": "internal error",
                    "message": "The Spycloud internal error."}],
    }


def test_nothing_supported_is_an_empty_list(client, mocked) -> None:
    assert client.post("/refer/observables", json=[
        {"type": "url", "value": "https://example.com/"}]).json == {"data": []}
    assert len(mocked.calls) == 0


def test_refer_validates_its_body(client, mocked) -> None:
    body = client.post("/refer/observables", json={"type": "email"}).json
    assert body["errors"][0]["code"] == "invalid argument"
    assert len(mocked.calls) == 0


API_IPS = RECORDS.replace("/emails/", "/ips/")


@pytest.fixture
def cached(settings):
    """The relay with its records cache on, as it ships."""
    return create_app(dataclasses.replace(settings, records_cache_ttl=300))


def test_repeated_observe_and_refer_make_no_new_call(
        cached, mocked, auth) -> None:
    mocked.get(RECORDS + "jane@example.com", json=page([rec(1, 7)]))
    mocked.get(CATALOG + "7", json=page([cat(7)]))
    client = cached.test_client()
    body = {"type": "email", "value": "jane@example.com"}
    first = client.post("/observe/observables", headers=auth, json=[body]).json
    calls = len(mocked.calls)
    again = client.post("/observe/observables", headers=auth, json=[body]).json
    links = client.post("/refer/observables", headers=auth, json=[body]).json
    assert again == first
    assert links["data"][1]["id"] == "ref-spycloud-detail-breach-" + uuid_of(7)
    assert len(mocked.calls) == calls  # neither asked SpyCloud again


def test_options_that_change_the_answer_are_not_served_from_another(
        cached, mocked, make_token, jwks) -> None:
    mocked.get(RECORDS + "jane@example.com", json=page(
        [rec(1, 7), rec(2, 7, severity=5)]))
    mocked.get(CATALOG + "7", json=page([cat(7)]))
    client = cached.test_client()
    body = [{"type": "email", "value": "jane@example.com"}]
    counts = []
    for claims in ({}, {"MIN_SEVERITY": 20}, {"MIN_SEVERITY": "20"}):
        token = make_token(**claims)
        answer = client.post("/observe/observables", json=body, headers={
            "Authorization": f"Bearer {token}"}).json
        counts.append(answer["data"]["sightings"]["count"])
    assert counts == [2, 1, 1]
    assert len([c for c in mocked.calls if "/emails/" in c.request.url]) == 2


def test_lookback_is_sent_as_since_and_checked(
        client, mocked, make_token, jwks) -> None:
    since = (dt.datetime.now(dt.timezone.utc).date()
             - dt.timedelta(days=30)).isoformat()
    old = rec(1, 7, day=1)  # 2020-01-01: SpyCloud should not have sent it
    mocked.get(RECORDS + "jane@example.com", json=page([old]),
               match=[matchers.query_param_matcher({"since": since})])
    token = make_token(LOOKBACK_DAYS=30)
    body = client.post("/observe/observables", json=[
        {"type": "email", "value": "jane@example.com"}],
        headers={"Authorization": f"Bearer {token}"}).json
    assert body == {"data": {}}


HOSTILE_CATALOG = cat(7, site="javascript:alert(1)",
                      uuid="../../../../evil?x=1#frag",
                      site_description="Click me")


def urls(value: object) -> list[str]:
    """Every string of an answer that looks like a link or names a site."""
    if isinstance(value, dict):
        return [u for v in value.values() for u in urls(v)]
    if isinstance(value, list):
        return [u for v in value for u in urls(v)]
    return [value] if isinstance(value, str) and (
        ":" in value and "/" in value or "alert" in value
        or "evil" in value) else []


def test_hostile_catalog_fields_make_no_link_or_observable(
        client, mocked, auth) -> None:
    mocked.get(RECORDS + "jane@example.com", json=page([rec(1, 7)]))
    mocked.get(CATALOG + "7", json=page([HOSTILE_CATALOG]))
    body = client.post("/observe/observables", headers=auth, json=[
        {"type": "email", "value": "jane@example.com"}]).json["data"]
    (sighting,) = body["sightings"]["docs"]
    (indicator,) = body["indicators"]["docs"]
    assert "source_uri" not in sighting
    assert sighting["relations"] == []  # no Leaked_From to the "site"
    assert indicator["external_references"] == []
    assert indicator["external_ids"] == ["7"]
    assert urls(body) == []


def test_hostile_catalog_fields_make_no_browse_link(
        client, mocked, auth) -> None:
    mocked.get(RECORDS + "jane@example.com", json=page([rec(1, 7)]))
    mocked.get(CATALOG + "7", json=page([HOSTILE_CATALOG]))
    assert refer(client, auth, ("email", "jane@example.com")) == {
        "data": [search("email", "jane%40example.com")]}


def test_a_long_breach_title_makes_a_bounded_refer_title(
        client, mocked, auth) -> None:
    mocked.get(RECORDS + "jane@example.com", json=page([rec(1, 7)]))
    mocked.get(CATALOG + "7", json=page([cat(
        7, title="\u202e<b>" + "T" * 200_000)]))
    browse = refer(client, auth, ("email", "jane@example.com"))["data"][1]
    assert browse["title"] == "Browse breach: <b>" + "T" * 196 + "…"
    assert len(browse["description"]) < 300
