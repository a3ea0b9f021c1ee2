"""Breach records kept for a few minutes, so XDR's repeated questions (every
pivot and refresh of an investigation asks again) don't spend the
customer's SpyCloud quota.

Kept in process memory only: records hold passwords, and are never written
to disk or an external store. Keyed by the API key's digest, the
observable and every option that changes what is kept; bounded by the
number of records held, and by `RECORDS_CACHE_TTL` (0 turns it off).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

from cachetools import TTLCache

from . import metrics
from .spycloud import Records


class RecordsCache:
    """A thread-safe, size- and time-bounded cache of `Records`."""

    def __init__(self, ttl: float, max_records: int) -> None:
        self.enabled = ttl > 0
        self._cache: TTLCache[Hashable, Records] = TTLCache(
            maxsize=max_records, ttl=max(ttl, 1e-9),
            getsizeof=lambda found: len(found.records) + 1,
        )
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Records | None:
        """Return the records stored under *key*, if still fresh."""
        if not self.enabled:
            return None
        with self._lock:
            found = self._cache.get(key)
        metrics.cache("records", found is not None, found is None)
        return found

    def put(self, key: Hashable, found: Records) -> None:
        """Keep *found* for the TTL (unless larger than the whole cache)."""
        if not self.enabled:
            return
        with self._lock:
            try:
                self._cache[key] = found
            except ValueError:  # larger than the cache itself
                pass
