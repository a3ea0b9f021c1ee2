"""What replicas share through Redis (the client's fallback, catalogs,
the per-key cap, the tiles' flight), against a real redis-server on
loopback."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from devtools.redis_server import RedisServer
from relay import flights, shared
from relay.catalog_cache import CatalogCache, SharedCatalogCache
from relay.limits import KeyLimits, SharedKeyLimits
from relay.records import parse_catalog
from relay.seal import Seal

from .conftest import load

pytestmark = pytest.mark.redis


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
    one = SharedCatalogCache(store, CatalogCache(60, 10), 60, 60)
    other = SharedCatalogCache(store, CatalogCache(60, 10), 60, 60)
    catalog = parse_catalog(load("catalog.json"))
    one.store("owner", [catalog], [99])
    assert other.lookup("owner", [11, 99, 7]) == ({11: catalog}, [99], [7])
    assert other.lookup("someone-else", [11]) == ({}, [], [11])


def test_the_cap_is_shared_and_a_lease_expires(store) -> None:
    first = SharedKeyLimits(store, KeyLimits(2), lease=0.3)
    second = SharedKeyLimits(store, KeyLimits(2), lease=0.3)
    held = first.acquire("k", 0)
    assert held and second.acquire("k", 0)
    assert not second.acquire("k", 0.05)  # two held, across "replicas"
    assert second.acquire("other", 0)
    first.release(held)
    assert second.acquire("k", 0)
    # Each lease ends one lease time (0.3 s) after it was taken.
    slots = shared.key("slots", "k")
    now_ms = time.time() * 1000
    ends = [score for _, score in store.client.zrange(slots, 0, -1,
                                                      withscores=True)]
    assert len(ends) == 2 and all(0 < end - now_ms <= 300 for end in ends)
    # The holders "crash" (never release) and their leases' ends pass.
    store.client.zadd(slots, {member: now_ms - 1 for member in
                              store.client.zrange(slots, 0, -1)})
    assert first.acquire("k", 0) and first.acquire("k", 0)


def test_never_more_than_the_cap_at_once(store) -> None:
    limits = [SharedKeyLimits(store, KeyLimits(3), lease=5)
              for _ in range(3)]
    lock = threading.Lock()
    seen = {"now": 0, "peak": 0}

    def call(n: int) -> None:
        mine = limits[n % 3]
        slot = mine.acquire("burst", 5)
        assert slot
        with lock:
            seen["now"] += 1
            seen["peak"] = max(seen["peak"], seen["now"])
        time.sleep(0.01)
        with lock:
            seen["now"] -= 1
        mine.release(slot)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen["peak"] == 3


SEAL = Seal("customer-api-key")
VALUE = {"tiles": {"x": 1}, "warnings": [], "complete": True}


def five_tiles_at_once(replicas: list, name: str) -> tuple[list, int]:
    """Ask *name* five times at once on three replicas; return the answers
    and how many times the value was computed."""
    computed = []

    def compute() -> dict:
        computed.append(1)
        time.sleep(0.02)
        return VALUE

    results = []
    threads = [threading.Thread(target=lambda f=replicas[n % 3]: results
                                .append(f.get(name, compute, 5, SEAL)))
               for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, len(computed)


def test_a_flight_is_computed_once_across_replicas(store) -> None:
    replicas = [flights.SharedFlight(store, 60, 5) for _ in range(3)]
    for round_ in range(20):
        assert five_tiles_at_once(replicas, f"owner:{round_}") == (
            [VALUE] * 5, 1), f"round {round_}"


def test_a_failed_leader_leaves_the_next_caller_computing_at_once(
        store) -> None:
    leader, follower = (flights.SharedFlight(store, 60, 30) for _ in range(2))

    def fail() -> dict:
        raise RuntimeError("SpyCloud failed")

    with pytest.raises(RuntimeError):
        leader.get("owner:day", fail, 5, SEAL)
    started = time.monotonic()
    assert follower.get("owner:day", lambda: VALUE, 5, SEAL) == VALUE
    assert time.monotonic() - started < 1


def test_a_value_that_met_a_failure_is_kept_seconds_only(store) -> None:
    flight = flights.SharedFlight(store, 900, 5)
    failed = {**VALUE, "complete": False}
    assert flight.get("owner:day", lambda: failed, 5, SEAL,
                      keep=lambda v: v["complete"]) == failed
    ttl = store.client.ttl(shared.key("tiles", "owner", "day"))
    assert 0 < ttl <= flights.FAILED_TTL
    assert flight.get("owner:week", lambda: VALUE, 5, SEAL,
                      keep=lambda v: v["complete"]) == VALUE
    assert store.client.ttl(shared.key("tiles", "owner", "week")) > 800


def test_a_slow_leaders_publish_keeps_the_next_leaders_lock(store) -> None:
    slow, next_ = (flights.SharedFlight(store, 60, 0.1) for _ in range(2))
    lock = shared.key("tiles-lock", "owner", "day")
    inside = []

    def slow_compute() -> dict:
        assert 0 < store.client.pttl(lock) <= 100  # the lock lives 0.1 s
        store.client.delete(lock)  # ... and it has, meanwhile
        inside.append(store.client.set(lock, b"the-next-leader", nx=True))
        return VALUE

    assert slow.get("owner:day", slow_compute, 5, SEAL) == VALUE
    assert inside == [True]
    assert store.client.get(lock) == b"the-next-leader"


def test_only_the_customer_can_read_the_figures(store) -> None:
    flight = flights.SharedFlight(store, 60, 5)
    secret = {"tiles": {"most": [{"email": "jane.doe@corp.example"}]},
              "warnings": [], "complete": True}
    flight.get("owner:day", lambda: secret, 5, SEAL)
    raw = store.client.get(shared.key("tiles", "owner", "day"))
    assert b"jane.doe" not in raw and b"tiles" not in raw
    # Another key cannot open it: a miss, computed afresh.
    other = Seal("another-api-key")
    assert flight.get("owner:day", lambda: VALUE, 5, other) == VALUE


@pytest.mark.parametrize("raw", [
    b"garbage", b'{"id": 11}', b"\x00\xff" * 40, b"[]"])
def test_an_unreadable_value_is_a_miss(store, caplog, raw) -> None:
    catalogs = SharedCatalogCache(store, CatalogCache(60, 10), 60, 60)
    flight = flights.SharedFlight(store, 60, 5)
    store.client.hset(CATALOGS, "11", raw)
    store.client.set(shared.key("tiles", "owner", "day"), raw)
    with caplog.at_level(logging.WARNING, logger="relay.shared"):
        assert catalogs.lookup("owner", [11]) == ({}, [], [11])
        assert catalogs.lookup("owner", [11]) == ({}, [], [11])
        assert flight.get("owner:day", lambda: VALUE, 5, SEAL) == VALUE
    said = [r.getMessage() for r in caplog.records
            if "cannot be read" in r.getMessage()]
    assert said == ["a catalog value in Redis cannot be read; treated as a"
                    " miss", "a tiles value in Redis cannot be read; treated"
                    " as a miss"]


def test_values_of_an_older_release_are_not_read(store) -> None:
    store.client.set("relay:catalog:owner:11", b'{"id": 11}')
    catalogs = SharedCatalogCache(store, CatalogCache(60, 10), 60, 60)
    assert catalogs.lookup("owner", [11]) == ({}, [], [11])
    assert shared.PREFIX != "relay:"


def test_redis_down_falls_back_and_warns_once(caplog) -> None:
    now = [100.0]
    down = shared.Redis("redis://127.0.0.1:1/0", timeout=0.05,
                        retry_interval=10, clock=lambda: now[0])
    local = CatalogCache(60, 10)
    catalogs = SharedCatalogCache(down, local, 60, 60)
    limits = SharedKeyLimits(down, KeyLimits(1), lease=5)
    catalog = parse_catalog(load("catalog.json"))
    with caplog.at_level(logging.WARNING, logger="relay.shared"):
        catalogs.store("owner", [catalog], [])
        assert catalogs.lookup("owner", [11]) == ({11: catalog}, [], [])
        held = limits.acquire("k", 0)  # the process's own cap
        assert held and held.token is None
        assert not limits.acquire("k", 0)
        limits.release(held)
        assert limits.acquire("k", 0)
        flight = flights.SharedFlight(down, 60, 5)
        assert flight.get("x", lambda: {"v": 1}, 1, SEAL) == {"v": 1}
    warned = [r for r in caplog.records
              if r.getMessage().startswith("Redis unavailable")]
    assert len(warned) == 1
    now[0] += 10  # the interval is over: Redis is tried (and warned) again
    with caplog.at_level(logging.WARNING, logger="relay.shared"):
        catalogs.lookup("owner", [12])  # not known here: Redis is asked
    assert len([r for r in caplog.records
                if r.getMessage().startswith("Redis unavailable")]) == 2


# --- what another writer may leave in Redis: input, checked like SpyCloud's -

CATALOGS = shared.key("catalogs", "owner")  # the owner's stored catalogs


def stamped(raw: bytes) -> bytes:
    """A stored catalog value around *raw* (SpyCloud's JSON), as if stored
    just now."""
    return b'{"at": %d, "catalog": %s}' % (time.time(), raw)


def poisoned(**changes: object) -> bytes:
    return json.dumps({**load("catalog.json"), **changes}).encode()


@pytest.mark.parametrize("raw", [
    poisoned(title=123), poisoned(title=""), poisoned(id="eleven"),
    poisoned(id=12),  # another catalog's value under this id's key
    poisoned(spycloud_publish_date=[2020]) + b"x", b"null", b"{}",
])
def test_a_stored_catalog_that_does_not_parse_is_a_miss(store, raw) -> None:
    replicas = [SharedCatalogCache(store, CatalogCache(60, 10), 60, 60)
                for _ in range(2)]
    store.client.hset(CATALOGS, "11", stamped(raw))
    for replica in replicas:
        assert replica.lookup("owner", [11]) == ({}, [], [11])


def test_a_stored_catalog_gets_the_checks_of_an_answer(store) -> None:
    reader = SharedCatalogCache(store, CatalogCache(60, 10), 60, 60)
    store.client.hset(CATALOGS, "11", stamped(poisoned(
        confidence=[1], site="javascript:alert(1)", uuid="../../evil#x",
        assets=["not", "a", "map"], combo_list_flag={"x": 1})))
    found, _, _ = reader.lookup("owner", [11])
    catalog = found[11]
    assert (catalog.id, catalog.title) == (11, "Example Forum Breach")
    assert (catalog.confidence, catalog.site, catalog.uuid, catalog.assets,
            catalog.combo_list) == (None, None, None, (), False)


def test_a_catalog_round_trips_through_the_shared_cache(store) -> None:
    writer, reader = (SharedCatalogCache(store, CatalogCache(60, 10), 60, 60)
                      for _ in range(2))
    catalog = parse_catalog({**load("catalog.json"), "combo_list_flag": "YES"})
    writer.store("owner", [catalog], [])
    assert reader.lookup("owner", [11]) == ({11: catalog}, [], [])


def test_a_missing_mark_of_another_value_is_not_missing(store) -> None:
    reader = SharedCatalogCache(store, CatalogCache(60, 10), 60, 60)
    store.client.hset(CATALOGS, "11", json.dumps(
        {"at": time.time(), "missing": "yes, trust me"}))
    assert reader.lookup("owner", [11]) == ({}, [], [11])


def test_leases_scored_beyond_their_life_hold_no_slot(store) -> None:
    slots = shared.key("slots", "k")
    store.client.zadd(slots, {f"forged-{n}": float("inf") for n in range(2)})
    store.client.zadd(slots, {"far-future": time.time() * 1000 + 10**9})
    replicas = [SharedKeyLimits(store, KeyLimits(2), lease=5)
                for _ in range(2)]
    assert replicas[0].acquire("k", 0) and replicas[1].acquire("k", 0)
    assert not replicas[0].acquire("k", 0)  # the cap still holds: two


def test_a_lock_without_an_expiry_is_stale(store) -> None:
    store.client.set(shared.key("tiles-lock", "owner", "day"), b"forever")
    store.client.set(shared.key("tiles-lock", "owner", "week"), b"long",
                     ex=10**6)
    flight = flights.SharedFlight(store, 60, 5)
    started = time.monotonic()
    assert flight.get("owner:day", lambda: VALUE, 5, SEAL) == VALUE
    assert flight.get("owner:week", lambda: VALUE, 5, SEAL) == VALUE
    assert time.monotonic() - started < 1  # computed at once, no wait


def test_a_key_of_the_wrong_type_is_that_keys_miss_only(store, caplog) -> None:
    store.client.set(shared.key("slots", "poisoned"), b"a string")
    store.client.rpush(shared.key("tiles", "poisoned", "day"), b"a list")
    replicas = [SharedKeyLimits(store, KeyLimits(1), lease=5)
                for _ in range(2)]
    flight = flights.SharedFlight(store, 60, 5)
    with caplog.at_level(logging.WARNING, logger="relay.shared"):
        assert replicas[0].acquire("poisoned", 0)  # its process's own cap
        assert flight.get("poisoned:day", lambda: VALUE, 5, SEAL) == VALUE
        # Everyone else still shares through Redis.
        assert store.up()
        assert replicas[0].acquire("healthy", 0)
        assert not replicas[1].acquire("healthy", 0)
        assert store.client.zcard(shared.key("slots", "healthy")) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert not any(m.startswith("Redis unavailable") for m in messages)
    assert messages.count(
        "a reply value in Redis cannot be read; treated as a miss") == 1
