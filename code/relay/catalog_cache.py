"""Breach catalogs kept across requests, per API-key digest, bounded in time
and size.

Catalogs change rarely, so a customer's analysts share them for
`CATALOG_CACHE_TTL` seconds. Ids SpyCloud did not return are remembered only
briefly, in case the catalog appears soon after.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from cachetools import TTLCache

from . import metrics
from .records import Catalog

MISSING_TTL = 60.0


class CatalogCache:
    """A thread-safe cache of catalogs and of ids known to be missing."""

    def __init__(self, ttl: float, size: int) -> None:
        self._found: TTLCache = TTLCache(maxsize=size, ttl=ttl)
        self._missing: TTLCache = TTLCache(
            maxsize=size, ttl=min(ttl, MISSING_TTL)
        )
        self._lock = threading.Lock()

    def lookup(
        self, owner: str, ids: Iterable[int]
    ) -> tuple[dict[int, Catalog], list[int], list[int]]:
        """Split *ids* into cached catalogs, known-missing ids and the rest."""
        found: dict[int, Catalog] = {}
        missing: list[int] = []
        unknown: list[int] = []
        with self._lock:
            for catalog_id in ids:
                catalog = self._found.get((owner, catalog_id))
                if catalog is not None:
                    found[catalog_id] = catalog
                elif (owner, catalog_id) in self._missing:
                    missing.append(catalog_id)
                else:
                    unknown.append(catalog_id)
        metrics.cache("catalog", len(found) + len(missing), len(unknown))
        return found, missing, unknown

    def store(
        self,
        owner: str,
        found: Iterable[Catalog],
        missing: Iterable[int],
    ) -> None:
        """Remember catalogs SpyCloud returned and ids it did not."""
        with self._lock:
            for catalog in found:
                self._found[(owner, catalog.id)] = catalog
            for catalog_id in missing:
                self._missing[(owner, catalog_id)] = True
