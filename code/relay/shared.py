"""What several workers and replicas share through Redis (`REDIS_URL`):
the catalog cache, the per-key cap and the tiles' aggregates.

Everything written is keyed by the API key's digest, never the key, and
no record (records hold passwords) is ever written. Redis down or slow is
not an outage: each operation has a short timeout, and on a failure the
relay uses its in-process cache and cap for `REDIS_RETRY_INTERVAL`
seconds, says so once per interval, counts it, then tries Redis again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import metrics
from .catalog_cache import CatalogCache
from .records import Catalog
from .transport import KeyLimits

log = logging.getLogger(__name__)
T = TypeVar("T")
PREFIX = "relay:"
POLL = 0.005  # seconds between tries for a slot or a flight's result

# Take a slot of a key's cap: drop expired leases (a crashed holder's),
# then add ours if fewer than the cap are held. KEYS[1] the key's slots;
# ARGV: cap, lease in ms, token. Redis' own clock, the same for replicas.
ACQUIRE = """
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class Redis:
    """A Redis client whose failures fall back, with one warning per
    interval, instead of failing the request."""

    def __init__(self, url: str, timeout: float, retry_interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # No retries of its own: a failure falls back at once.
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0))
        self._retry_interval = retry_interval
        self._clock = clock
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.acquire_script = self.client.register_script(ACQUIRE)

    def run(self, operation: Callable[[redis.Redis], T],
            fallback: Callable[[], T]) -> T:
        """Return *operation*'s result, or *fallback*'s while Redis is down."""
        if self._clock() < self._down_until:
            metrics.REDIS_FALLBACKS.inc()
            return fallback()
        try:
            return operation(self.client)
        except (redis.RedisError, OSError) as error:
            self._down(error)
            metrics.REDIS_FALLBACKS.inc()
            return fallback()

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


class SharedCatalogCache:
    """The catalog cache on Redis, the in-process one as fallback."""

    def __init__(self, shared: Redis, local: CatalogCache, ttl: float,
                 missing_ttl: float) -> None:
        self.redis = shared
        self.local = local
        self.ttl = max(1, int(ttl))
        self.missing_ttl = max(1, int(missing_ttl))

    def lookup(self, owner: str, ids: Iterable[int]
               ) -> tuple[dict[int, Catalog], list[int], list[int]]:
        """Split *ids* into cached catalogs, known-missing ids and the rest."""
        ids = list(ids)
        return self.redis.run(lambda r: self._lookup(r, owner, ids),
                              lambda: self.local.lookup(owner, ids))

    def store(self, owner: str, found: Iterable[Catalog],
              missing: Iterable[int]) -> None:
        """Remember catalogs SpyCloud returned and ids it did not, here
        and (while it answers) in Redis."""
        found, missing = list(found), list(missing)
        self.local.store(owner, found, missing)
        self.redis.run(lambda r: self._store(r, owner, found, missing),
                       lambda: None)

    def _lookup(self, client: redis.Redis, owner: str, ids: list[int]
                ) -> tuple[dict[int, Catalog], list[int], list[int]]:
        found: dict[int, Catalog] = {}
        missing: list[int] = []
        todo: list[int] = []
        if ids:
            values = client.mget([_key("catalog", owner, i) for i in ids]
                                 + [_key("missing", owner, i) for i in ids])
            for n, catalog_id in enumerate(ids):
                if values[n] is not None:
                    found[catalog_id] = _catalog(values[n])
                elif values[len(ids) + n] is not None:
                    missing.append(catalog_id)
                else:
                    todo.append(catalog_id)
        metrics.cache("catalog", len(found) + len(missing), len(todo))
        return found, missing, todo

    def _store(self, client: redis.Redis, owner: str,
               found: list[Catalog], missing: list[int]) -> None:
        with client.pipeline(transaction=False) as pipe:
            for catalog in found:
                pipe.set(_key("catalog", owner, catalog.id),
                         _dump_catalog(catalog), ex=self.ttl)
            for catalog_id in missing:
                pipe.set(_key("missing", owner, catalog_id), b"1",
                         ex=self.missing_ttl)
            pipe.execute()


class SharedKeyLimits:
    """The per-key cap across every worker and replica: leased slots in a
    sorted set per key digest, so a crashed holder's slot expires."""

    def __init__(self, shared: Redis, local: KeyLimits, lease: float) -> None:
        self.redis = shared
        self.local = local
        self.cap = local.cap
        self.lease_ms = int(lease * 1000)
        self._tokens = threading.local()

    def acquire(self, digest: str, timeout: float) -> bool:
        """Take a slot for *digest*, waiting at most *timeout* seconds."""
        if not self.redis.up():
            return self._local(digest, timeout)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        waited = False
        while True:
            taken = self.redis.run(
                lambda r, t=token: bool(self.redis.acquire_script(
                    keys=[_key("slots", digest)],
                    args=[self.cap, self.lease_ms, t], client=r)),
                lambda: None)
            if taken is None:  # Redis failed: the process's own cap
                return self._local(digest, max(0.0, deadline - time.monotonic()))
            if taken:
                self._held().append((digest, token))
                return True
            if not waited:
                metrics.KEY_WAITS.inc()
                waited = True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)

    def release(self, digest: str) -> None:
        """Give back the slot this thread took for *digest*."""
        held = self._held()
        for n, (owner, token) in enumerate(held):
            if owner == digest:
                del held[n]
                if token is None:
                    self.local.release(digest)
                else:
                    self.redis.run(
                        lambda r, t=token: r.zrem(_key("slots", digest), t),
                        lambda: None)
                return

    def in_use(self) -> int:
        return self.local.in_use()

    def _local(self, digest: str, timeout: float) -> bool:
        if self.local.acquire(digest, timeout):
            self._held().append((digest, None))
            return True
        return False

    def _held(self) -> list[tuple[str, str | None]]:
        if not hasattr(self._tokens, "held"):
            self._tokens.held = []
        return self._tokens.held


class SharedFlight:
    """Tile aggregates on Redis, computed once across replicas: the first
    to take a short lock computes; the others wait for its result."""

    def __init__(self, shared: Redis, ttl: float, lock_ttl: float) -> None:
        self.redis = shared
        self.ttl = max(1, int(ttl))
        self.lock_ms = int(lock_ttl * 1000)

    def get(self, key: str, compute: Callable[[], dict],
            timeout: float) -> dict:
        """Return the shared value of *key*, computing it at most once
        across replicas while Redis answers (else here, unshared)."""
        value_key, lock_key = _key("tiles", key), _key("tiles-lock", key)
        deadline = time.monotonic() + timeout
        while True:
            state = self.redis.run(
                lambda r: self._read_or_lock(r, value_key, lock_key),
                lambda: ("compute", None))
            kind, value = state
            # Look-ups are counted once, by the process's own flight.
            if kind == "value":
                return value
            if kind == "compute":
                value = compute()
                self.redis.run(lambda r, v=value: self._publish(
                    r, value_key, lock_key, v), lambda: None)
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError
            time.sleep(POLL * 4)

    def _read_or_lock(self, client: redis.Redis, value_key: str,
                      lock_key: str) -> tuple[str, Any]:
        raw = client.get(value_key)
        if raw is not None:
            return "value", json.loads(raw)
        if client.set(lock_key, b"1", nx=True, px=self.lock_ms):
            return "compute", None
        return "wait", None

    def _publish(self, client: redis.Redis, value_key: str, lock_key: str,
                 value: dict) -> None:
        with client.pipeline(transaction=False) as pipe:
            pipe.set(value_key, json.dumps(value), ex=self.ttl)
            pipe.delete(lock_key)
            pipe.execute()


def _key(kind: str, *parts: object) -> str:
    return PREFIX + kind + ":" + ":".join(str(p) for p in parts)


def _dump_catalog(catalog: Catalog) -> bytes:
    doc = dataclasses.asdict(catalog)
    doc["published"] = catalog.published.isoformat() if catalog.published \
        else None
    return json.dumps(doc).encode()


def _catalog(raw: bytes) -> Catalog:
    doc = json.loads(raw)
    doc["published"] = dt.datetime.fromisoformat(doc["published"]) \
        if doc["published"] else None
    doc["assets"] = tuple(doc["assets"])
    return Catalog(**doc)
