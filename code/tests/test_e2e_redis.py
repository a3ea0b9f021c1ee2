"""Three relay processes sharing one Redis, in front of one SpyCloud."""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from devtools.emulator import key_label
from devtools.redis_server import RedisServer
from devtools.stack import Stack
from relay import shared, tiles
from relay.digest import key_digest

from .helpers import answer, observables

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

KEY = "redis-Key-0c9d51-not-for-logs"
CAP = 3


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    logs = tmp_path_factory.mktemp("replicas")
    with RedisServer() as server:
        env = {"REDIS_URL": server.url, "SPYCLOUD_MAX_CONCURRENCY": str(CAP),
               "REDIS_RETRY_INTERVAL": "1", "REDIS_TIMEOUT": "0.2"}
        files = [(logs / f"{n}.log").open("w") for n in range(3)]
        opened = []
        try:
            first = Stack(api_key=KEY, env=env, latency_ms=40,
                          log=files[0]).start()
            opened.append(first)
            for n in (1, 2):
                opened.append(Stack(api_key=KEY, env=env, upstream=first,
                                    log=files[n]).start())
            yield opened, server, logs
        finally:
            for stack in reversed(opened):
                stack.stop()
            for file in files:
                file.close()


def post(stack: Stack, path: str, body) -> dict:
    return answer(stack, path, body)


def observe(stack: Stack, *emails: str) -> dict:
    return post(stack, "/observe/observables", observables("email", emails))


def calls(stack: Stack, endpoint: str) -> int:
    return stack.emulator.calls[endpoint]


def test_a_catalog_is_fetched_once_across_replicas(replicas) -> None:
    relays, _, _ = replicas
    before = calls(relays[0], "breach/catalog")
    for n, relay in enumerate(relays):  # the same 4 breaches, new users
        body = observe(relay, f"n8.b4.s951.u{n}@bench.test")
        assert body["data"]["indicators"]["count"] == 4
    assert calls(relays[0], "breach/catalog") - before == 1


def test_five_tiles_read_the_watchlist_once_across_replicas(replicas) -> None:
    relays, _, _ = replicas
    before = calls(relays[0], "breach/data/watchlist")
    jobs = [(relays[n % 3], tile_id) for n, tile_id in enumerate(tiles.TILES)]
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda job: post(
            job[0], "/tiles/tile-data",
            {"tile_id": job[1], "period": "last_7_days"}), jobs))
    assert all("data" in answer for answer in answers)
    assert calls(relays[0], "breach/data/watchlist") - before == 1


def test_redis_holds_no_identity_and_no_secret(replicas) -> None:
    import redis

    from devtools import synthetic

    relays, server, _ = replicas
    asked = {"email": "jane.doe@demo.test", "user": "jdoe",
             "ip": "203.0.113.7"}
    for n, (kind, value) in enumerate(asked.items()):
        post(relays[n], "/observe/observables",
             [{"type": kind, "value": value}])
    for tile_id in tiles.TILES:
        assert "data" in post(relays[0], "/tiles/tile-data",
                              {"tile_id": tile_id, "period": "last_90_days"})
    client = redis.Redis.from_url(server.url)

    def value(key: bytes) -> bytes:
        kind = client.type(key)
        if kind == b"string":
            return client.get(key) or b""
        if kind == b"hash":
            return b" ".join(b"%s %s" % item
                             for item in client.hgetall(key).items())
        return b" ".join(client.zrange(key, 0, -1))

    stored = b" ".join(key + b" " + value(key) for key in client.scan_iter())
    assert b":tiles:" in stored  # the figures are there, sealed
    secrets = {KEY, *asked.values()}
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    for record in (*synthetic.watchlist(today),
                   *synthetic.find("emails", asked["email"])):
        secrets.update(str(record[f]) for f in ("email", "username",
                                                "password", "ip_addresses")
                       if record.get(f))
    found = sorted(s for s in secrets if s.encode() in stored)
    assert found == []


def test_the_per_key_cap_holds_across_replicas(replicas) -> None:
    relays, _, _ = replicas
    emulator = relays[0].emulator
    emulator.reset()
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(
            lambda n: observe(relays[n % 3], *[
                f"n2.b1.s{960 + n}.u{u}@bench.test" for u in range(5)]),
            range(6)))
    assert all("errors" not in answer for answer in answers)
    assert emulator.stats()["peak_in_flight"][key_label(KEY)] == CAP


def test_poisoned_values_cost_no_answer_and_no_outage(replicas) -> None:
    import redis

    relays, server, logs = replicas
    observe(relays[0], "jane.doe@demo.test")  # her catalogs are shared now
    client = redis.Redis.from_url(server.url)
    catalogs = shared.key("catalogs", key_digest(KEY))
    stored = client.hkeys(catalogs)
    assert len(stored) >= 4
    for name in stored:  # another writer's values: a title of 123
        client.hset(catalogs, name, b'{"at": %d, "catalog": {"id": %s,'
                    b' "title": 123}}' % (time.time(), name))
    # A key of the wrong type where the key's slots belong.
    client.set(shared.key("slots", key_digest(KEY)), b"a string")
    before = calls(relays[0], "breach/catalog")
    body = observe(relays[2], "jane.doe@demo.test")
    assert "errors" not in body
    assert {k: v["count"] for k, v in body["data"].items()} == {
        "sightings": 6, "indicators": 4, "relationships": 6}
    assert calls(relays[0], "breach/catalog") > before  # misses, refetched
    client.delete(shared.key("slots", key_digest(KEY)))
    text = "".join((logs / f"{n}.log").read_text() for n in range(3))
    assert "Redis unavailable" not in text and "Traceback" not in text


def sharing_again(relay: Stack, server: RedisServer, seed: int) -> None:
    """Wait (5 s at most) until *relay* writes to Redis again: observe an
    email of breaches nobody asked for yet until their catalogs appear."""
    import redis

    client = redis.Redis.from_url(server.url)
    deadline = time.monotonic() + 5
    for attempt in range(100):
        observe(relay, f"n2.b1.s{seed}{attempt:02d}.u0@bench.test")
        if any(client.scan_iter(match=f"{shared.PREFIX}*:catalogs")):
            client.flushdb()
            return
        assert time.monotonic() < deadline, "the relay never used Redis again"
        time.sleep(0.1)


def test_answers_stay_whole_without_redis_and_it_rejoins(replicas) -> None:
    relays, server, logs = replicas
    server.stop()
    for n, relay in enumerate(relays):
        for attempt in range(2):  # each asks SpyCloud (a lease) twice
            body = observe(relay, f"n6.b3.s97{n}.u{attempt}@bench.test")
            assert "errors" not in body
            assert body["data"]["sightings"]["count"] == 6
    warned = [(logs / f"{n}.log").read_text().count("Redis unavailable")
              for n in range(3)]
    assert warned == [1, 1, 1]  # once per interval, not per request
    server.start()
    for n, relay in enumerate(relays[:2]):
        sharing_again(relay, server, 960 + n)  # its retry interval is over
    before = calls(relays[0], "breach/catalog")
    observe(relays[0], "n8.b4.s952.u0@bench.test")
    observe(relays[1], "n8.b4.s952.u1@bench.test")  # Redis has it again
    assert calls(relays[0], "breach/catalog") - before == 1
    text = "".join((logs / f"{n}.log").read_text() for n in range(3))
    assert KEY not in text and "Traceback" not in text
