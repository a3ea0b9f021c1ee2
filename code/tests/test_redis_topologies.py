"""Replicas sharing the Redis operators run: TLS with a private CA and an
ACL user, a three-primary cluster, a primary found through Sentinel (and
its failover); and what the relay costs Redis per SpyCloud call. Real
redis-server processes on loopback; two apps play two replicas."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import responses
import yaml

from devtools.redis_server import RedisCluster, RedisSentinel, RedisServer
from relay import flights
from relay.digest import key_digest
from relay.factory import create_app
from relay.limits import KeyLimits, SharedKeyLimits
from relay.seal import Seal
from relay.settings import Settings, SettingsError
from relay.shared import Redis, Renewals, key

from .conftest import API, API_KEY
from .helpers import page, wait_until

pytestmark = pytest.mark.redis

RECORDS = API + "breach/data/emails/"
CATALOG = API + "breach/catalog/"


def record(n: int, source: int) -> dict[str, Any]:
    return {"document_id": f"doc-{n}-{source}", "source_id": source,
            "severity": 20, "spycloud_publish_date": "2026-03-14T00:00:00Z"}


def catalog(n: int) -> dict[str, Any]:
    return {"id": n, "title": f"Breach {n}",
            "spycloud_publish_date": "2026-03-01T00:00:00Z"}


COMPOSE_SENTINEL = Path(__file__).parents[2] / "docs" / "deploy" \
    / "compose-sentinel.yaml"


def answer_spycloud(mocked: responses.RequestsMock) -> list[str]:
    """Answer every email with one record of breach 1000 + its number, and
    every catalog asked; return the list of catalog calls made."""
    catalog_calls: list[str] = []

    def records(request: Any) -> tuple[int, dict[str, str], str]:
        n = int(re.search(r"u(\d+)@", request.path_url).group(1))
        return 200, {}, json.dumps(page([record(n, 1000 + n % 100),
                                         record(n, 2000 + n % 100)]))

    def catalogs(request: Any) -> tuple[int, dict[str, str], str]:
        ids = request.path_url.rsplit("/", 1)[1].split(",")
        catalog_calls.append(",".join(ids))
        return 200, {}, json.dumps(page([catalog(int(i)) for i in ids]))

    mocked.add_callback(responses.GET, re.compile(RECORDS + ".*"), records)
    mocked.add_callback(responses.GET, re.compile(CATALOG + ".*"), catalogs)
    return catalog_calls


def replicas(settings: Settings, url: str, **more: Any) -> list[Any]:
    shared = dataclasses.replace(settings, redis_url=url,
                                 redis_retry_interval=0.5, **more)
    return [create_app(shared).test_client() for _ in range(2)]


def observe(client: Any, auth: dict[str, str], *users: int) -> dict:
    body: dict = client.post("/observe/observables", headers=auth, json=[
        {"type": "email", "value": f"u{n}@corp.example"} for n in users]).json
    return body


def shared_once(apps: list[Any], auth: dict[str, str],
                calls: list[str], user: int) -> None:
    """A new catalog met by both replicas is fetched once between them."""
    before = len(calls)
    for app in apps:
        body = observe(app, auth, user)
        assert "errors" not in body, body
        assert body["data"]["indicators"]["count"] == 2
    assert len(calls) - before == 1


def unavailable(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith("Redis unavailable")]


# --- REDIS_URL -------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:6379/0", "rediss://relay:pw@redis.example:6380/1",
    "unix:///run/redis.sock?db=2",
    "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/mymaster",
    "rediss+sentinel://s1:26379/mymaster/3",
    "redis+cluster://10.0.0.1:6379,10.0.0.2:6379",
    "rediss+cluster://user:pw@node.example:6379",
])
def test_every_form_of_redis_url_is_accepted(url: str) -> None:
    assert Settings.from_env({"REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize("url", [
    "http://redis:6379", "redis+sentinel://10.0.0.1:26379",
    "redis+sentinel://10.0.0.1:26379/master/0/extra",
    "redis+sentinel://10.0.0.1:26379/master/zero", "redis+cluster://",
    "redis+cluster://10.0.0.1", "redis+cluster://10.0.0.1:99999",
    "redis+cluster://10.0.0.1:6379/3", "redis://:secret@",
])
def test_a_malformed_redis_url_is_one_line_without_its_password(
        url: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"REDIS_URL": url.replace("secret", "pw")})
    line = str(refused.value)
    assert line.startswith("REDIS_URL=") and "\n" not in line
    assert "redis+sentinel://" in line  # it says what is allowed
    assert ":pw@" not in line


def test_the_start_up_line_hides_every_redis_password() -> None:
    described = Settings.from_env({
        "REDIS_URL": "redis+sentinel://relay:s3cret@s1:26379,s2:26379/m",
        "REDIS_SENTINEL_PASSWORD": "sentinel-s3cret"}).describe()
    assert "s3cret" not in json.dumps(described)
    assert described["REDIS_URL"] == "redis+sentinel://relay:***@s1:26379,s2:26379/m"


def test_an_unreachable_cluster_falls_back(settings, mocked, auth,
                                           caplog) -> None:
    calls = answer_spycloud(mocked)
    apps = replicas(settings, "redis+cluster://127.0.0.1:1")
    with caplog.at_level(logging.WARNING, logger="relay.shared"):
        body = observe(apps[0], auth, 1)
    assert body["data"]["indicators"]["count"] == 2 and len(calls) == 1
    assert len(unavailable(caplog)) == 1


def test_a_redis_without_resp3_is_shared(settings, mocked, auth,
                                         caplog) -> None:
    # Redis 5, and proxies in front of managed Redis, know no HELLO.
    calls = answer_spycloud(mocked)
    with RedisServer(extra=("--rename-command", "HELLO", "")) as server:
        apps = replicas(settings, server.url)
        with caplog.at_level(logging.WARNING, logger="relay.shared"):
            shared_once(apps, auth, calls, 3)
        assert unavailable(caplog) == []
        assert server.client().keys("*catalogs")


# --- TLS with a private CA and an ACL user ----------------------------------

@pytest.fixture(scope="module")
def tls_server(certificates) -> Iterator[RedisServer]:
    files = tuple(str(certificates[n]) for n in ("ca", "cert", "key"))
    with RedisServer(tls=files, user=("relay", "relay-s3cret")) as server:
        yield server


def test_tls_with_a_private_ca_and_an_acl_user(
        settings, mocked, auth, tls_server, certificates, caplog) -> None:
    calls = answer_spycloud(mocked)
    assert tls_server.url.startswith("rediss://relay:relay-s3cret@")
    apps = replicas(settings, tls_server.url,
                    redis_ca_file=str(certificates["ca"]))
    with caplog.at_level(logging.WARNING, logger="relay.shared"):
        shared_once(apps, auth, calls, 1)
    assert unavailable(caplog) == []
    assert tls_server.client().keys("*")  # what was shared is there


def test_tls_without_the_ca_falls_back(settings, mocked, auth, tls_server,
                                       caplog) -> None:
    calls = answer_spycloud(mocked)
    apps = replicas(settings, tls_server.url)
    with caplog.at_level(logging.WARNING, logger="relay.shared"):
        for app in apps:
            assert observe(app, auth, 2)["data"]["indicators"]["count"] == 2
    assert len(calls) == 2  # each replica on its own
    assert len(unavailable(caplog)) == 2
    assert "relay-s3cret" not in caplog.text


# --- a three-primary cluster ------------------------------------------------

@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as running:
        yield running


def test_a_cluster_shares_catalogs_caps_and_tiles(
        settings, mocked, auth, cluster, caplog) -> None:
    calls = answer_spycloud(mocked)
    apps = replicas(settings, cluster.url)
    with caplog.at_level(logging.WARNING, logger="relay.shared"):
        shared_once(apps, auth, calls, 3)
        # The per-key cap across replicas.
        stores = [Redis(cluster.url, 0.5, 0.5) for _ in range(2)]
        limits = [SharedKeyLimits(store, KeyLimits(2), lease=5)
                  for store in stores]
        held = [limits[0].acquire("k", 0), limits[1].acquire("k", 0)]
        assert all(held) and limits[0].acquire("k", 0.05) is None
        limits[1].release(held[1])
        assert limits[0].acquire("k", 0) is not None
        # Five tiles on three replicas compute once.
        computed: list[int] = []

        def compute() -> dict:
            computed.append(1)
            time.sleep(0.05)
            return {"tiles": {}, "complete": True}

        flights_ = [flights.SharedFlight(stores[n % 2], 60, 5)
                    for n in range(3)]
        threads = [threading.Thread(target=lambda f=flights_[n % 3]: f.get(
            "owner:last_7_days", compute, 5, Seal("key")))
            for n in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert computed == [1]
    assert unavailable(caplog) == []
    # Customers spread over the nodes: each key holds its digest's tag.
    keys = [k for node in cluster.nodes for k in node.client().keys("*")]
    assert keys and all(b"{" in k and b"}" in k for k in keys)


# --- Sentinel, and a failover -----------------------------------------------

def compose_sentinels() -> tuple[int, int]:
    """The sentinels of docs/deploy/compose-sentinel.yaml, and their
    quorum."""
    compose = yaml.safe_load(COMPOSE_SENTINEL.read_text())["services"]
    names = [name for name in compose if name.startswith("sentinel-")]
    quorum = re.search(r"sentinel monitor \S+ \S+ \d+ (\d+)",
                       compose[names[0]]["command"][0])
    assert quorum is not None
    return len(names), int(quorum.group(1))


@pytest.mark.parametrize("sentinels", [(1, 1), compose_sentinels()],
                         ids=["one sentinel", "as docs/deploy's compose"])
def test_sentinel_finds_the_primary_and_follows_a_failover(
        settings, mocked, auth, sentinels) -> None:
    calls = answer_spycloud(mocked)
    with RedisSentinel(*sentinels) as sentinel:
        apps = replicas(settings, sentinel.url)
        shared_once(apps, auth, calls, 5)
        old = sentinel.primary_port()
        sentinel.primary.stop()
        # During the failover every answer is whole (in-process state).
        deadline = time.monotonic() + 30
        while sentinel.primary_port() == old:
            for app in apps:
                body = observe(app, auth, 6)
                assert body["data"]["indicators"]["count"] == 2
            assert time.monotonic() < deadline, "no failover"
            time.sleep(0.2)
        assert sentinel.primary_port() == sentinel.replica.port
        time.sleep(0.6)  # REDIS_RETRY_INTERVAL: both go back to Redis
        wait_until(lambda: sentinel.replica.client().info(
            "replication")["role"] == "master", timeout=10)
        shared_once(apps, auth, calls, 7)
        stored = sentinel.replica.client().keys("*catalogs")
        assert stored  # on the promoted primary


# --- what one SpyCloud call costs Redis --------------------------------------

@pytest.fixture
def plain() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def test_redis_commands_per_spycloud_call(settings, mocked, auth,
                                          plain) -> None:
    calls = answer_spycloud(mocked)
    (app,) = replicas(settings, plain.url)[:1]

    def spycloud_calls() -> int:
        return len([c for c in mocked.calls if "/enterprise-v2/" in
                    c.request.url])

    observe(app, auth, *range(200, 210))  # connections made, scripts loaded
    before, catalog_calls = spycloud_calls(), len(calls)
    cold_sent, cold_executed = plain.commands(
        lambda: observe(app, auth, *range(10, 20)))
    cold = spycloud_calls() - before
    # Ten records calls, and catalog calls for the 20 new breaches.
    assert cold == 10 + len(calls) - catalog_calls > 10
    before = spycloud_calls()
    hot_sent, _ = plain.commands(lambda: observe(app, auth, *range(110, 120)))
    hot = spycloud_calls() - before
    assert hot == 10  # the same breaches: records only
    # Measured: cold 2.0 sent and 3.0 executed per call (a lease per
    # records call, kept for the observable's catalog call and then
    # released; one HMGET per observable's catalogs, one HSET per catalog
    # call; the keys' lives renewed now and then), hot 2.0 sent (this
    # replica's own copies of the catalogs: a lease and its release per
    # call). Before: 3.7 sent and 8.7 executed cold.
    assert cold_sent / cold <= 2.5, (cold_sent, cold)
    assert cold_executed / cold <= 6, (cold_executed, cold)
    assert hot_sent / hot <= 2.5, (hot_sent, hot)
    # Every key the relay wrote has a life (volatile-lru may evict it), and
    # every lease was given back.
    admin = plain.client()
    assert all(admin.pttl(name) > 0 for name in admin.keys("*"))
    assert admin.zcard(key("slots", key_digest(API_KEY))) == 0


def test_a_key_is_renewed_at_least_every_quarter_of_its_life() -> None:
    now = [0.0]
    renewals = Renewals(60, clock=lambda: now[0])
    assert renewals.due("k") and not renewals.due("k")
    now[0] += 14.9
    assert not renewals.due("k") and renewals.due("other")
    now[0] += 0.2
    assert renewals.due("k")


def test_a_full_redis_under_noeviction_is_a_fallback(
        settings, mocked, auth, caplog) -> None:
    calls = answer_spycloud(mocked)
    with RedisServer(extra=("--maxmemory", "2mb", "--maxmemory-policy",
                            "noeviction")) as full:
        admin = full.client()
        with pytest.raises(redis.ResponseError):  # fill it to the brim
            for n in range(10_000):
                admin.set(f"ballast:{n}", b"x" * 10_000)
        (app,) = replicas(settings, full.url)[:1]
        with caplog.at_level(logging.WARNING, logger="relay.shared"):
            body = observe(app, auth, 8)
        assert "errors" not in body
        assert body["data"]["indicators"]["count"] == 2 and calls
        assert unavailable(caplog) == []  # Redis stays in use for the rest
