"""At most `SPYCLOUD_MAX_CONCURRENCY` SpyCloud calls in flight per API key:
in process (`KeyLimits`), or across every worker and replica as leased
slots in Redis (`SharedKeyLimits`), the process's own as fallback."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis

from . import metrics
from .concurrency import retries
from .shared import Redis, Renewals, Script, key

# Take a slot of a key's cap if fewer than the cap of leases are live:
# only leases that end within one lease time (and the clocks' skew) of now
# count, so a crashed holder's expires, and a score further off (written
# by anything but this script) is stale, never a slot held for good. A
# full cap drops the leases that have ended. KEYS[1] the key's slots;
# ARGV: cap, lease in ms, token, now in ms (the caller's clock: replicas
# keep theirs within `SKEW_MS` of each other), the skew in ms, and the
# key's life in ms when the caller renews it (else 0). Two commands a
# slot, the release's ZREM a third (Redis's TIME, or a PEXPIRE on every
# call, would be more on every call).
SKEW_MS = 5000
ACQUIRE = Script("""
local now = tonumber(ARGV[4])
local lease = tonumber(ARGV[2])
if redis.call('ZCOUNT', KEYS[1], '(' .. now, now + lease + tonumber(ARGV[5]))
    < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
  if ARGV[6] ~= '0' then
    redis.call('PEXPIRE', KEYS[1], ARGV[6])
  end
  return 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return 0
""")


@dataclass(frozen=True)
class Slot:
    """One slot of a key's cap, held by one call: its key's digest, and
    its lease's token when Redis holds it (None: the process's own cap)."""

    digest: str
    token: str | None = None


class Kept:
    """The slot one caller keeps from one SpyCloud call to its next: an
    observable's record pages, then its catalogs' call. Each call after the
    first goes out at once and costs Redis no lease and no release; the
    slot is given back once the caller has no call left (`give_back`, which
    may be called any number of times)."""

    def __init__(self) -> None:
        self._slot: Slot | None = None
        self._limits: Limits | None = None

    def take(self) -> Slot | None:
        """The kept slot, now the taker's to give back; None if none."""
        slot, self._slot = self._slot, None
        return slot

    def keep(self, slot: Slot, limits: Limits) -> None:
        """Keep *slot* (of *limits*) for the caller's next call."""
        self.give_back()
        self._slot, self._limits = slot, limits

    def give_back(self) -> None:
        """Release the kept slot, if any."""
        slot = self.take()
        if slot is not None and self._limits is not None:
            self._limits.release(slot)


class Limits(Protocol):
    """What the transport needs of a per-key cap, in process or shared."""

    cap: int

    def acquire(self, digest: str, timeout: float) -> Slot | None:
        """Take a slot for *digest*, waiting at most *timeout* seconds;
        None if none came free in time."""

    def release(self, slot: Slot) -> None:
        """Give back a slot taken by `acquire`."""


class KeyLimits:
    """At most `cap` calls in flight per API key, across all requests.

    A key's semaphore lives while any call holds or awaits it, and is
    dropped when the last one leaves, so a busy key is never evicted and an
    idle one costs nothing.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[threading.Semaphore, list[int]]] = {}

    def acquire(self, digest: str, timeout: float) -> Slot | None:
        """Take a slot for *digest*, waiting at most *timeout* seconds."""
        with self._lock:
            entry = self._keys.get(digest)
            if entry is None:
                entry = self._keys[digest] = (threading.Semaphore(self.cap), [0])
            entry[1][0] += 1
        if entry[0].acquire(blocking=False):
            return Slot(digest)
        metrics.KEY_WAITS.inc()
        taken = False
        try:
            taken = entry[0].acquire(timeout=timeout)
            return Slot(digest) if taken else None
        finally:  # timed out, or the waiting call was stopped
            if not taken:
                self._leave(digest)

    def release(self, slot: Slot) -> None:
        """Give back a slot taken by `acquire`."""
        self._keys[slot.digest][0].release()
        self._leave(slot.digest)

    def _leave(self, digest: str) -> None:
        with self._lock:
            users = self._keys[digest][1]
            users[0] -= 1
            if not users[0]:
                del self._keys[digest]


class SharedKeyLimits:
    """The per-key cap across every worker and replica: leased slots in a
    sorted set per key digest, so a crashed holder's slot expires."""

    def __init__(self, shared: Redis, local: KeyLimits, lease: float) -> None:
        self.redis = shared
        self.local = local
        self.cap = local.cap
        self.lease_ms = int(lease * 1000)
        self._renewals = Renewals(2 * lease)

    def acquire(self, digest: str, timeout: float) -> Slot | None:
        """Take a slot for *digest*, waiting at most *timeout* seconds: a
        full cap is tried again after waits that grow (not every few
        milliseconds per waiting call), until the timeout."""
        if not self.redis.up():
            return self.local.acquire(digest, timeout)
        token = uuid.uuid4().hex
        end = time.monotonic() + timeout
        waited = False
        for _ in retries(timeout):
            taken = self.redis.run(self._take(digest, token), lambda: None)
            if taken is None:  # Redis failed: the process's own cap
                return self.local.acquire(
                    digest, max(0.0, end - time.monotonic()))
            if taken:
                return Slot(digest, token)
            if not waited:
                metrics.KEY_WAITS.inc()
                waited = True
        return None

    def release(self, slot: Slot) -> None:
        """Give back a slot taken by `acquire`."""
        if slot.token is None:
            self.local.release(slot)
            return
        token = slot.token
        self.redis.run(lambda client: client.zrem(key("slots", slot.digest),
                                                  token), lambda: None)

    def _take(self, digest: str, token: str
              ) -> Callable[[redis.Redis], bool]:
        def take(client: redis.Redis) -> bool:
            name = key("slots", digest)
            life = 2 * self.lease_ms if self._renewals.due(name) else 0
            return bool(ACQUIRE(client, [name], [
                self.cap, self.lease_ms, token, int(time.time() * 1000),
                SKEW_MS, life]))
        return take
