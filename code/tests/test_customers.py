"""Every cache is pinned to its customer, and no failure is remembered.

Two customers (two API keys) ask the same thing and SpyCloud answers each
differently: each must see only its own answer, from every cache (records,
catalogs, tile figures), in process and, for what is shared, through Redis
between two replicas. Then a fault that heals: the next request is
answered afresh, not from a remembered failure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest
from responses import matchers

from devtools.redis_server import RedisServer
from relay import flights, shared
from relay.factory import create_app

from .conftest import API, API_KEY
from .helpers import page

pytestmark = pytest.mark.redis

NOW = dt.datetime(2026, 3, 15, 12, 0, tzinfo=dt.timezone.utc)
KEY_B = "another-customer-key-4242"
KEYS = {"A": API_KEY, "B": KEY_B}
EMAIL = "shared.name@corp.example"
RECORDS = API + "breach/data/emails/" + EMAIL
CATALOG = API + "breach/catalog/7"
WATCHLIST = API + "breach/data/watchlist"
TILE = {"tile_id": "spycloud-most-exposed", "period": "last_7_days"}


def record(who: str) -> dict:
    return {"document_id": f"doc-of-{who}", "source_id": 7, "severity": 20,
            "email": f"{who.lower()}.person@corp.example",
            "spycloud_publish_date": "2026-03-14T00:00:00Z"}


def catalog(who: str) -> dict:
    return {"id": 7, "uuid": "u-7", "title": f"Breach as {who} sees it",
            "spycloud_publish_date": "2026-03-01T00:00:00Z"}


def of(who: str) -> list:
    return [matchers.header_matcher({"X-API-Key": KEYS[who]})]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with RedisServer() as server:
        yield server.url


@pytest.fixture(params=["in process", "through Redis"])
def replicas(request, settings, redis_url):
    """Two replicas: in process, one app asked twice; through Redis, two
    apps sharing one Redis (customer B asks the second)."""
    shared = settings
    if request.param == "through Redis":
        import redis
        redis.Redis.from_url(redis_url).flushdb()
        shared = dataclasses.replace(settings, redis_url=redis_url)
    first = create_app(shared, now=lambda: NOW)
    second = first if request.param == "in process" \
        else create_app(shared, now=lambda: NOW)
    return first.test_client(), second.test_client()


def bearer(make_token, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(key=KEYS[who])}"}


def observe(client, auth: dict) -> dict:
    return client.post("/observe/observables", headers=auth, json=[
        {"type": "email", "value": EMAIL}]).json


def test_the_records_cache_is_per_customer(
        settings, mocked, make_token, jwks) -> None:
    client = create_app(dataclasses.replace(
        settings, records_cache_ttl=300)).test_client()
    for who in "AB":
        mocked.get(RECORDS, json=page([record(who)]), match=of(who))
        mocked.get(CATALOG, json=page([catalog(who)]), match=of(who))
    for who in "ABAB":  # the second round comes from the records cache
        body = observe(client, bearer(make_token, who))
        docs = body["data"]["sightings"]["docs"]
        assert [d["external_ids"][0] for d in docs] == [f"doc-of-{who}"]


def test_the_catalog_cache_is_per_customer(
        replicas, mocked, make_token, jwks) -> None:
    for who in "AB":
        mocked.get(RECORDS, json=page([record(who)]), match=of(who))
        mocked.get(RECORDS, json=page([record(who)]), match=of(who))
        mocked.get(CATALOG, json=page([catalog(who)]), match=of(who))
    for who, client in zip("ABAB", replicas * 2):
        body = observe(client, bearer(make_token, who))
        titles = [i["title"] for i in body["data"]["indicators"]["docs"]]
        assert titles == [f"Breach as {who} sees it"]


def test_the_tile_figures_are_per_customer(
        replicas, mocked, make_token, jwks) -> None:
    for who in "AB":
        mocked.get(WATCHLIST, json=page([record(who)]), match=of(who))
        mocked.get(CATALOG, json=page([catalog(who)]), match=of(who))
    for who, client in zip("ABAB", replicas * 2):
        data = client.post("/tiles/tile-data", json=TILE,
                           headers=bearer(make_token, who)).json["data"]
        assert f"{who.lower()}\\.person\\@corp\\.example" in data["data"][2]
        assert f"{'AB'.replace(who, '').lower()}\\.person" not in str(data)


def test_a_failure_is_not_remembered(
        replicas, mocked, make_token, jwks, redis_url) -> None:
    auth = bearer(make_token, "A")
    tile = {"tile_id": "spycloud-top-breaches", "period": "last_7_days"}
    mocked.get(WATCHLIST, json=page([record("A")]))
    for _ in range(3):  # every attempt of the catalog call fails
        mocked.get(CATALOG, status=500)
    failed = replicas[0].post("/tiles/tile-data", json=tile,
                              headers=auth).json
    assert failed["errors"][0]["message"] == "The Spycloud internal error."
    if replicas[0].application is not replicas[1].application:
        # Shared, it served the replicas waiting for it; it lives a second,
        # never the tiles' TTL ...
        import redis
        client = redis.Redis.from_url(redis_url)
        names = list(client.scan_iter(match=shared.PREFIX + "*:tiles:*"))
        (name,) = names
        assert 0 < client.pttl(name) <= flights.FAILED_TTL * 1000
        client.delete(name)  # ... and that second has passed
    # SpyCloud heals: the next request reads it again and answers whole.
    mocked.get(WATCHLIST, json=page([record("A")]))
    mocked.get(CATALOG, json=page([catalog("A")]))
    healed = replicas[1].post("/tiles/tile-data", json=tile,
                              headers=auth).json
    assert "errors" not in healed
    assert "Breach as A sees it" in str(healed["data"])
