"""A value computed once however many ask at once: in process
(`SingleFlight`, a TTL cache whose misses are computed once), or across
every replica through Redis (`SharedFlight`); a value that met a failure
serves the callers waiting for it and is not kept."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

from cachetools import TTLCache
from cryptography.exceptions import InvalidTag

from . import metrics
from .seal import Seal
from .concurrency import retries
from .shared import Redis, Script, key

# An aggregate that met a SpyCloud failure serves the replicas waiting for
# it (they look again within 0.1 s), then is dropped after this many
# seconds.
FAILED_TTL = 1
Value = dict[str, Any]  # what a shared flight computes: JSON

# A flight's value, or its lock: one atomic step, so two replicas cannot
# both miss the value and both take the lock. A lock is honoured only
# within its own life: one without an expiry, or longer than a lock's
# life (written by anything but this script), is stale. KEYS: value,
# lock; ARGV: the caller's token, the lock's life in ms. {1, value} | {2}
# (the caller holds the lock) | {0} (another holds it).
READ_OR_LOCK = Script("""
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
local left = redis.call('PTTL', KEYS[2])
if left == -1 or left > tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[2])
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {2}
end
return {0}
""")

# Publish a flight's value (unless ARGV[2] is empty) and release its lock,
# only if the caller still owns it. KEYS: value, lock; ARGV: token, value,
# its life in seconds.
PUBLISH = Script("""
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return 1
""")


class SingleFlight:
    """A TTL cache whose misses are computed once, however many ask."""

    def __init__(self, ttl: float, size: int = 1024) -> None:
        self._cache: TTLCache[Hashable, Any] = TTLCache(
            maxsize=size, ttl=ttl)
        self._flights: dict[Hashable, Future[Any]] = {}
        self._waiting = 0  # callers waiting for a value being computed
        self._lock = threading.Lock()

    def waiting(self) -> int:
        """Say how many callers wait for a value being computed."""
        return self._waiting

    def get(self, name: Hashable, compute: Callable[[], Any],
            timeout: float, keep: Callable[[Any], bool] = lambda _: True,
            ) -> Any:
        """Return the cached value of *name*, computing it (once) if needed;
        a caller that finds it being computed waits at most *timeout*. A
        value *keep* refuses (it met a failure) serves the callers already
        waiting for it, and is not cached."""
        with self._lock:
            if name in self._cache:
                metrics.cache("tiles", 1, 0)
                return self._cache[name]
            found = self._flights.get(name)
            leader = found is None
            flight = self._flights[name] = found or Future()
        metrics.cache("tiles", not leader, leader)
        if not leader:
            self._waiting += 1
            try:
                return flight.result(timeout=timeout)
            finally:
                self._waiting -= 1
        try:
            value = compute()
        except BaseException as error:
            flight.set_exception(error)
            raise
        else:
            flight.set_result(value)
            if keep(value):
                with self._lock:
                    self._cache[name] = value
            return value
        finally:
            with self._lock:
                del self._flights[name]


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

    def get(self, name: str, compute: Callable[[], Value], timeout: float,
            seal: Seal, keep: Callable[[Value], bool] = lambda _: True,
            ) -> Value:
        """Return the shared value of *name*, computing it at most once
        across replicas while Redis answers (else here, unshared). A value
        *keep* refuses (it met a failure) is shared for seconds only."""
        digest, _, period = name.partition(":")  # one customer's slot
        value_key = key("tiles", digest, period)
        lock_key = key("tiles-lock", digest, period)
        token = uuid.uuid4().hex
        # Another replica computes: its value is looked for again after
        # waits that grow, until the timeout.
        for _ in retries(timeout, first=0.02, longest=0.1):
            state = self.redis.run(
                lambda r: READ_OR_LOCK(r, [value_key, lock_key],
                                       [token, self.lock_ms]),
                lambda: [2])
            # Look-ups are counted once, by the process's own flight.
            if state[0] == 1:
                value = self._open(seal, value_key, state[1])
                if value is not None:
                    return value
            if state[0] != 0:  # the lock is ours, or the value unusable
                return self._compute(value_key, lock_key, token, compute,
                                     seal, keep)
        raise TimeoutError

    def _compute(self, value_key: str, lock_key: str, token: str,
                 compute: Callable[[], Value], seal: Seal,
                 keep: Callable[[Value], bool]) -> Value:
        sealed, life = b"", 0
        try:
            value = compute()
            sealed = seal.close(value_key, value)
            life = self.ttl if keep(value) else FAILED_TTL
            return value
        finally:  # published, or the lock released for the next caller
            self.redis.run(lambda r: PUBLISH(
                r, [value_key, lock_key], [token, sealed, life]), lambda: None)

    def _open(self, seal: Seal, value_key: str, raw: bytes) -> Value | None:
        try:
            value = seal.open(value_key, raw)
            if not isinstance(value, dict):
                raise TypeError("not an object")
            return value
        except (ValueError, TypeError, InvalidTag) as error:
            self.redis.bad_value("tiles", error)
            return None
