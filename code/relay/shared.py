"""The Redis that workers and replicas share (`REDIS_URL`): its client,
and the fallback that makes Redis down or slow not an outage.

`REDIS_URL` names one Redis, a primary found through Sentinel, or a
Redis Cluster (its forms: `redis_url.py`).

Each operation has a short timeout; on a failure the relay uses its
in-process caches and limits for `REDIS_RETRY_INTERVAL` seconds, says so
once per interval, counts it, then tries Redis again. Every key carries
the values' format version (`PREFIX`) and, as its hash tag, a customer's
digest (never its key): each script and pipeline touches one slot of a
cluster, and customers spread over its nodes. A value that does not
decode or fit is a miss, counted and logged once, never an error. What is
shared lives with its concern: `catalog_cache.py`, `limits.py`,
`flights.py`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel

from . import metrics
from .redis_url import Target, target

log = logging.getLogger(__name__)
T = TypeVar("T")
# The format version of every value: a release that changes what a value
# holds changes it, so replicas of two releases never read each other's.
PREFIX = "relay:v4:"


@dataclass(frozen=True)
class Tls:
    """The CA and the client certificate of a `rediss` connection."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def options(self) -> dict[str, Any]:
        """redis-py's connection options for TLS (hostnames checked)."""
        return {"ssl": True, "ssl_cert_reqs": "required",
                "ssl_ca_certs": self.ca_file,
                "ssl_certfile": self.cert_file, "ssl_keyfile": self.key_file,
                "ssl_check_hostname": True}


def connect(where: Target, timeout: float, tls: Tls | None = None,
            sentinel_password: str | None = None) -> redis.Redis:
    """Return a client of *where*; it connects when first used. No
    retries of its own: a failure falls back at once."""
    # RESP2: every Redis speaks it (Redis 5 and some proxies refuse
    # RESP3's HELLO), and a new connection costs no handshake command.
    common: dict[str, Any] = {
        "socket_timeout": timeout, "socket_connect_timeout": timeout,
        "protocol": 2}
    secure = (tls or Tls()).options() if where.tls else {}
    if where.kind == "single":
        return redis.Redis.from_url(
            where.url, retry=Retry(NoBackoff(), 0), **common,
            **({k: v for k, v in secure.items() if k != "ssl"}))
    if where.kind == "sentinel":
        sentinels = Sentinel(  # type: ignore[no-untyped-call]
            list(where.nodes), sentinel_kwargs={
                **common, **secure, "username": where.username,
                "password": sentinel_password or where.password},
            **common)
        client: redis.Redis = sentinels.master_for(  # type: ignore[no-untyped-call]
            where.master or "", db=where.db, username=where.username,
            password=where.password, retry=Retry(NoBackoff(), 0), **secure)
        return client
    cluster: Any = RedisCluster(
        startup_nodes=[ClusterNode(host, port)  # type: ignore[no-untyped-call]
                       for host, port in where.nodes],
        username=where.username, password=where.password,
        retry=Retry(NoBackoff(), 0), require_full_coverage=False,
        **common, **secure)
    # A cluster client speaks the commands the relay uses.
    return cast(redis.Redis, cluster)


class Renewals:
    """When this process renews a key's life: a key living two lease
    times, renewed by every process at least every half lease time while
    it writes, outlives every lease or value written to it (each writer
    renewed it at most half a lease before, for two)."""

    def __init__(self, life: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.life = life
        self._clock = clock
        self._last: dict[str, float] = {}

    def due(self, name: str) -> bool:
        """Say whether *name*'s life is to be renewed now (and note it)."""
        now = self._clock()
        if now - self._last.get(name, -self.life) < self.life / 4:
            return False
        if len(self._last) > 100_000:  # idle names are forgotten
            self._last.clear()
        self._last[name] = now
        return True


class Script:
    """A Lua script run by its digest (loaded on the node that needs it
    when Redis does not know it yet): no client to register it with."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode(),  # noqa: S324 (Redis's id)
                                usedforsecurity=False).hexdigest()

    def __call__(self, client: redis.Redis, keys: Sequence[str],
                 args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(self.text, len(keys), *keys, *args)


class Redis:
    """A Redis client whose failures fall back, with one warning per
    interval, instead of failing the request."""

    def __init__(self, url: str, timeout: float, retry_interval: float,
                 clock: Callable[[], float] = time.monotonic,
                 tls: Tls | None = None, sentinel_password: str | None = None,
                 ) -> None:
        self._target = target(url)
        self._options = (timeout, tls, sentinel_password)
        self._client: redis.Redis | None = None
        self._retry_interval = retry_interval
        self._clock = clock
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._said_bad: set[str] = set()

    def run(self, operation: Callable[[redis.Redis], T],
            fallback: Callable[[], T]) -> T:
        """Return *operation*'s result, or *fallback*'s while Redis is down."""
        if self._clock() < self._down_until:
            metrics.REDIS_FALLBACKS.inc()
            return fallback()
        try:
            return operation(self.client)
        except redis.ResponseError as error:
            # Redis answered, refusing this command (a key of the wrong
            # type, a full Redis under noeviction): this operation falls
            # back, and Redis stays in use for every other key.
            self.bad_value("reply", error)
            metrics.REDIS_FALLBACKS.inc()
            return fallback()
        except (redis.RedisError, RedisClusterException, OSError) as error:
            self._down(error)
            metrics.REDIS_FALLBACKS.inc()
            return fallback()

    @property
    def client(self) -> redis.Redis:
        """The client, made on first use (a cluster's asks its nodes for
        the slots then; an unreachable one raises, and falls back)."""
        if self._client is None:
            timeout, tls, sentinel_password = self._options
            self._client = connect(self._target, timeout, tls,
                                   sentinel_password)
        return self._client

    def bad_value(self, kind: str, error: Exception) -> None:
        """Count a value that does not decode or fit, or a command Redis
        refused (a miss); log it once per kind."""
        metrics.REDIS_BAD_VALUES.labels(kind).inc()
        with self._lock:
            if kind in self._said_bad:
                return
            self._said_bad.add(kind)
        log.warning("a %s value in Redis cannot be read; treated as a miss",
                    kind, extra={"fields": {"error": type(error).__name__}})

    def up(self) -> bool:
        """Say whether Redis is in use (not inside a fallback interval)."""
        return self._clock() >= self._down_until

    def _down(self, error: Exception) -> None:
        with self._lock:
            if self._clock() < self._down_until:
                return
            self._down_until = self._clock() + self._retry_interval
        log.warning("Redis unavailable; using in-process caches and limits",
                    extra={"fields": {"error": type(error).__name__,
                                      "retry_in": self._retry_interval}})


def key(kind: str, digest: str, *parts: object) -> str:
    """The key of one customer's value: its hash tag is the customer's
    digest, so one customer's keys share a cluster slot."""
    return f"{PREFIX}{{{digest}}}:{kind}" + "".join(f":{p}" for p in parts)
