"""What several workers and replicas share through Redis (`REDIS_URL`):
the catalog cache, the per-key cap and the tiles' aggregates.

Everything written is keyed by the API key's digest, never the key, and
no record (records hold passwords) is ever written. Breach catalogs are
written as they are (they name breaches, not people); the tiles' figures,
which name the most exposed employees, are sealed with AES-GCM under a key
derived from the customer's API key, so only a request holding that key
can read them. Every key carries the values' format version (`PREFIX`):
a value that does not decode or fit is a miss, counted and logged once,
never an error. Redis down or slow is not an outage: each operation has a
short timeout, and on a failure the relay uses its in-process cache and
cap for `REDIS_RETRY_INTERVAL` seconds, says so once per interval, counts
it, then tries Redis again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import metrics
from .catalog_cache import CatalogCache
from .records import Catalog
from .transport import KeyLimits

log = logging.getLogger(__name__)
T = TypeVar("T")
# The format version of every value: a release that changes what a value
# holds changes it, so replicas of two releases never read each other's.
PREFIX = "relay:v2:"
POLL = 0.005  # seconds between tries for a slot or a flight's result
# An aggregate that met a SpyCloud failure serves the replicas waiting for
# it (they poll every 20 ms), then is dropped after this many seconds.
FAILED_TTL = 1

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

# A flight's value, or its lock: one atomic step, so two replicas cannot
# both miss the value and both take the lock. KEYS: value, lock; ARGV:
# the caller's token, the lock's life in ms. {1, value} | {2} (the caller
# holds the lock) | {0} (another holds it).
READ_OR_LOCK = """
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {2}
end
return {0}
"""

# Publish a flight's value (unless ARGV[2] is empty) and release its lock,
# only if the caller still owns it. KEYS: value, lock; ARGV: token, value,
# its life in seconds.
PUBLISH = """
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return 1
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
        self.read_or_lock_script = self.client.register_script(READ_OR_LOCK)
        self.publish_script = self.client.register_script(PUBLISH)
        self._said_bad: set[str] = set()

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

    def bad_value(self, kind: str, error: Exception) -> None:
        """Count a value that does not decode or fit (a miss); log it
        once per kind."""
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
                catalog = self._catalog(values[n])
                if catalog is not None:
                    found[catalog_id] = catalog
                elif values[len(ids) + n] is not None:
                    missing.append(catalog_id)
                else:
                    todo.append(catalog_id)
        metrics.cache("catalog", len(found) + len(missing), len(todo))
        return found, missing, todo

    def _catalog(self, raw: bytes | None) -> Catalog | None:
        if raw is None:
            return None
        try:
            return _catalog(raw)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            self.redis.bad_value("catalog", error)
            return None

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
    """Tile aggregates on Redis, computed once across replicas: the caller
    that takes the flight's lock computes, the others wait (by their
    budget) for its value. The lock holds its owner's token and is
    released by that owner only, on failure too, so the next caller
    computes at once. Values are sealed with the customer's key."""

    def __init__(self, shared: Redis, ttl: float, lock_ttl: float) -> None:
        self.redis = shared
        self.ttl = max(1, int(ttl))
        self.lock_ms = int(lock_ttl * 1000)

    def get(self, key: str, compute: Callable[[], dict], timeout: float,
            seal: Seal, keep: Callable[[dict], bool] = lambda _: True,
            ) -> dict:
        """Return the shared value of *key*, computing it at most once
        across replicas while Redis answers (else here, unshared). A value
        *keep* refuses (it met a failure) is shared for seconds only."""
        value_key, lock_key = _key("tiles", key), _key("tiles-lock", key)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        while True:
            state = self.redis.run(
                lambda r: self.redis.read_or_lock_script(
                    keys=[value_key, lock_key], args=[token, self.lock_ms],
                    client=r),
                lambda: [2])
            # Look-ups are counted once, by the process's own flight.
            if state[0] == 1:
                value = self._open(seal, value_key, state[1])
                if value is not None:
                    return value
            if state[0] != 0:  # the lock is ours, or the value unusable
                return self._compute(value_key, lock_key, token, compute,
                                     seal, keep)
            if time.monotonic() >= deadline:
                raise TimeoutError
            time.sleep(POLL * 4)

    def _compute(self, value_key: str, lock_key: str, token: str,
                 compute: Callable[[], dict], seal: Seal,
                 keep: Callable[[dict], bool]) -> dict:
        sealed, life = b"", 0
        try:
            value = compute()
            sealed = seal.close(value_key, value)
            life = self.ttl if keep(value) else FAILED_TTL
            return value
        finally:  # published, or the lock released for the next caller
            self.redis.run(lambda r: self.redis.publish_script(
                keys=[value_key, lock_key], args=[token, sealed, life],
                client=r), lambda: None)

    def _open(self, seal: Seal, value_key: str, raw: bytes) -> dict | None:
        try:
            value = seal.open(value_key, raw)
            if not isinstance(value, dict):
                raise TypeError("not an object")
            return value
        except (ValueError, TypeError, InvalidTag) as error:
            self.redis.bad_value("tiles", error)
            return None


class Seal:
    """AES-GCM under a key derived from one customer's API key: what it
    closes only a holder of that API key can open. The Redis key is the
    associated data, so a value cannot be moved to another key."""

    NONCE = 12

    def __init__(self, api_key: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=b"spycloud-relay tiles v2").derive(
                           api_key.encode("utf-8"))
        self._aead = AESGCM(derived)

    def close(self, name: str, value: Any) -> bytes:
        nonce = os.urandom(self.NONCE)
        return nonce + self._aead.encrypt(
            nonce, json.dumps(value).encode(), name.encode())

    def open(self, name: str, sealed: bytes) -> Any:
        return json.loads(self._aead.decrypt(
            sealed[:self.NONCE], sealed[self.NONCE:], name.encode()))


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
