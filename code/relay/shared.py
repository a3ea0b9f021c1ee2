"""The Redis that workers and replicas share (`REDIS_URL`): its client,
and the fallback that makes Redis down or slow not an outage.

Each operation has a short timeout; on a failure the relay uses its
in-process caches and limits for `REDIS_RETRY_INTERVAL` seconds, says so
once per interval, counts it, then tries Redis again. Every key carries
the values' format version (`PREFIX`) and a customer's digest, never its
key; a value that does not decode or fit is a miss, counted and logged
once, never an error. What is shared lives with its concern:
`catalog_cache.py`, `limits.py`, `flights.py`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
# The format version of every value: a release that changes what a value
# holds changes it, so replicas of two releases never read each other's.
PREFIX = "relay:v3:"


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
        except (redis.RedisError, OSError) as error:
            self._down(error)
            metrics.REDIS_FALLBACKS.inc()
            return fallback()

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


def key(kind: str, *parts: object) -> str:
    return PREFIX + kind + ":" + ":".join(str(p) for p in parts)
