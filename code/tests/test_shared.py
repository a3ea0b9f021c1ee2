"""The Redis-backed shared state, against a real redis-server on loopback."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from devtools.redis_server import RedisServer
from relay import shared
from relay.catalog_cache import CatalogCache
from relay.records import parse_catalog
from relay.transport import KeyLimits

from .conftest import load


@pytest.fixture(scope="module")
def server():
    with RedisServer() as running:
        yield running


@pytest.fixture
def store(server) -> shared.Redis:
    client = shared.Redis(server.url, timeout=0.2, retry_interval=0.3)
    client.client.flushdb()
    return client


def test_catalogs_round_trip_and_missing_ids(store) -> None:
    one = shared.SharedCatalogCache(store, CatalogCache(60, 10), 60, 60)
    other = shared.SharedCatalogCache(store, CatalogCache(60, 10), 60, 60)
    catalog = parse_catalog(load("catalog.json"))
    one.store("owner", [catalog], [99])
    assert other.lookup("owner", [11, 99, 7]) == ({11: catalog}, [99], [7])
    assert other.lookup("someone-else", [11]) == ({}, [], [11])


def test_the_cap_is_shared_and_a_lease_expires(store) -> None:
    first = shared.SharedKeyLimits(store, KeyLimits(2), lease=0.3)
    second = shared.SharedKeyLimits(store, KeyLimits(2), lease=0.3)
    assert first.acquire("k", 0)
    assert second.acquire("k", 0)
    assert not second.acquire("k", 0.05)  # two held, across "replicas"
    assert second.acquire("other", 0)
    first.release("k")
    assert second.acquire("k", 0)
    # The holders "crash" (never release): their leases run out.
    time.sleep(0.35)
    assert first.acquire("k", 0) and first.acquire("k", 0)


def test_never_more_than_the_cap_at_once(store) -> None:
    limits = [shared.SharedKeyLimits(store, KeyLimits(3), lease=5)
              for _ in range(3)]
    lock = threading.Lock()
    seen = {"now": 0, "peak": 0}

    def call(n: int) -> None:
        mine = limits[n % 3]
        assert mine.acquire("burst", 5)
        with lock:
            seen["now"] += 1
            seen["peak"] = max(seen["peak"], seen["now"])
        time.sleep(0.01)
        with lock:
            seen["now"] -= 1
        mine.release("burst")

    threads = [threading.Thread(target=call, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen["peak"] == 3


def test_a_flight_is_computed_once_across_replicas(store) -> None:
    computed = []

    def compute() -> dict:
        computed.append(1)
        time.sleep(0.1)
        return {"tiles": {"x": 1}, "warnings": []}

    flights = [shared.SharedFlight(store, 60, 5) for _ in range(4)]
    results = []
    threads = [threading.Thread(target=lambda f=f: results.append(
        f.get("owner:last_7_days", compute, 5))) for f in flights]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [{"tiles": {"x": 1}, "warnings": []}] * 4
    assert computed == [1]


def test_redis_down_falls_back_and_warns_once(caplog) -> None:
    down = shared.Redis("redis://127.0.0.1:1/0", timeout=0.05,
                        retry_interval=0.2)
    local = CatalogCache(60, 10)
    catalogs = shared.SharedCatalogCache(down, local, 60, 60)
    limits = shared.SharedKeyLimits(down, KeyLimits(1), lease=5)
    catalog = parse_catalog(load("catalog.json"))
    with caplog.at_level(logging.WARNING, logger="relay.shared"):
        catalogs.store("owner", [catalog], [])
        assert catalogs.lookup("owner", [11]) == ({11: catalog}, [], [])
        assert limits.acquire("k", 0)  # the process's own cap
        assert not limits.acquire("k", 0)
        limits.release("k")
        assert limits.acquire("k", 0)
        flight = shared.SharedFlight(down, 60, 5)
        assert flight.get("x", lambda: {"v": 1}, 1) == {"v": 1}
    warned = [r for r in caplog.records
              if r.getMessage().startswith("Redis unavailable")]
    assert len(warned) == 1
    time.sleep(0.25)  # the interval is over: Redis is tried (and warned) again
    with caplog.at_level(logging.WARNING, logger="relay.shared"):
        catalogs.lookup("owner", [11])
    assert len([r for r in caplog.records
                if r.getMessage().startswith("Redis unavailable")]) == 2
