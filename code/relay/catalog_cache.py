"""Breach catalogs kept across requests, per API-key digest, bounded in time
and size.

Catalogs change rarely, so a customer's analysts share them for
`CATALOG_CACHE_TTL` seconds. Ids SpyCloud did not return are remembered only
briefly, in case the catalog appears soon after.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol

import orjson
import redis
from cachetools import TTLCache

from . import metrics
from .jsonio import loads
from .records import Catalog, catalog_payload, parse_catalog
from .shared import Redis, key

MISSING_TTL = 60.0
MISSING = b"1"  # the value of an id SpyCloud did not return


class CatalogStore(Protocol):
    """What the lookup needs of a catalog cache, in process or shared."""

    def lookup(self, owner: str, ids: Iterable[int]
               ) -> tuple[dict[int, Catalog], list[int], list[int]]:
        """Split *ids* into cached catalogs, known-missing ids and the rest."""

    def store(self, owner: str, found: Iterable[Catalog],
              missing: Iterable[int]) -> None:
        """Remember catalogs SpyCloud returned and ids it did not."""


class CatalogCache:
    """A thread-safe cache of catalogs and of ids known to be missing."""

    def __init__(self, ttl: float, size: int) -> None:
        self._found: TTLCache[tuple[str, int], Catalog] = TTLCache(
            maxsize=size, ttl=ttl)
        self._missing: TTLCache[tuple[str, int], bool] = TTLCache(
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
            values = client.mget([key("catalog", owner, i) for i in ids]
                                 + [key("missing", owner, i) for i in ids])
            for n, catalog_id in enumerate(ids):
                catalog = self._catalog(catalog_id, values[n])
                if catalog is not None:
                    found[catalog_id] = catalog
                elif values[len(ids) + n] == MISSING:
                    missing.append(catalog_id)
                else:
                    todo.append(catalog_id)
        metrics.cache("catalog", len(found) + len(missing), len(todo))
        return found, missing, todo

    def _catalog(self, catalog_id: int,
                 raw: bytes | str | None) -> Catalog | None:
        """Read a stored catalog with the checks a SpyCloud answer gets:
        a value that does not parse, or is another catalog's, is a miss."""
        if raw is None:
            return None
        try:
            catalog = parse_catalog(loads(raw))
            if catalog.id != catalog_id:
                raise ValueError("the catalog of another id")
            return catalog
        except ValueError as error:
            self.redis.bad_value("catalog", error)
            return None

    def _store(self, client: redis.Redis, owner: str,
               found: list[Catalog], missing: list[int]) -> None:
        with client.pipeline(transaction=False) as pipe:
            for catalog in found:
                pipe.set(key("catalog", owner, catalog.id),
                         orjson.dumps(catalog_payload(catalog)), ex=self.ttl)
            for catalog_id in missing:
                pipe.set(key("missing", owner, catalog_id), MISSING,
                         ex=self.missing_ttl)
            pipe.execute()
