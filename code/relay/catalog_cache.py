"""Breach catalogs kept across requests, per API-key digest, bounded in time
and size.

Catalogs change rarely, so a customer's analysts share them for
`CATALOG_CACHE_TTL` seconds. Ids SpyCloud did not return are remembered only
briefly, in case the catalog appears soon after.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import redis
from cachetools import TTLCache

from . import metrics
from .jsonio import dumps, loads
from .records import Catalog, catalog_payload, parse_catalog
from .shared import Redis, Renewals, key

MISSING_TTL = 60.0
MISSING = object()  # a stored mark: SpyCloud did not return this id
STALE = object()  # a stored value past its life


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
        self, owner: str, ids: Iterable[int], count: bool = True,
    ) -> tuple[dict[int, Catalog], list[int], list[int]]:
        """Split *ids* into cached catalogs, known-missing ids and the rest
        (counted as the cache's hits and misses unless *count* is false)."""
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
        if count:
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
    """The catalog cache on Redis, the in-process one as fallback.

    A customer's catalogs are fields of one hash (`catalogs`, under its
    digest's hash tag), each value stamped with the time it was stored
    and read back through the checks a SpyCloud answer gets, so a look-up
    of many ids is one `HMGET` and a batch SpyCloud answered is one `HSET`
    (its life renewed now and then, `Renewals`): a value is used no longer
    than its own life (a catalog's, or a missing id's), values past it
    are dropped when met, and the hash expires once nobody writes to it.
    """

    def __init__(self, shared: Redis, local: CatalogCache, ttl: float,
                 missing_ttl: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = shared
        self.local = local
        self.ttl = max(1, int(ttl))
        self.missing_ttl = max(1, int(missing_ttl))
        self._clock = clock
        self._renewals = Renewals(2 * self.ttl)

    def lookup(self, owner: str, ids: Iterable[int]
               ) -> tuple[dict[int, Catalog], list[int], list[int]]:
        """Split *ids* into cached catalogs, known-missing ids and the rest:
        this process's own copies first (what it stored or read before, for
        no longer than their life), then Redis for the rest, kept here."""
        found, missing, todo = self.local.lookup(owner, ids, count=False)
        if todo:
            shared, gone, todo = self.redis.run(
                lambda r: self._lookup(r, owner, todo), lambda: ({}, [], todo))
            self.local.store(owner, shared.values(), gone)
            found.update(shared)
            missing.extend(gone)
        metrics.cache("catalog", len(found) + len(missing), len(todo))
        return found, missing, todo

    def store(self, owner: str, found: Iterable[Catalog],
              missing: Iterable[int]) -> None:
        """Remember catalogs SpyCloud returned and ids it did not, here
        and (while it answers) in Redis."""
        found, missing = list(found), list(missing)
        self.local.store(owner, found, missing)
        if found or missing:
            self.redis.run(lambda r: self._store(r, owner, found, missing),
                           lambda: None)

    def _lookup(self, client: redis.Redis, owner: str, ids: list[int]
                ) -> tuple[dict[int, Catalog], list[int], list[int]]:
        found: dict[int, Catalog] = {}
        missing: list[int] = []
        todo: list[int] = []
        stale: list[int] = []
        if ids:
            name = key("catalogs", owner)
            values = client.hmget(name, [str(i) for i in ids])
            now = self._clock()
            for catalog_id, raw in zip(ids, values):
                kept = self._value(catalog_id, raw, now)
                if kept is STALE:
                    stale.append(catalog_id)
                if isinstance(kept, Catalog):
                    found[catalog_id] = kept
                elif kept is MISSING:
                    missing.append(catalog_id)
                else:
                    todo.append(catalog_id)
            if stale:
                client.hdel(name, *[str(i) for i in stale])
        return found, missing, todo

    def _value(self, catalog_id: int, raw: bytes | str | None,
               now: float) -> Catalog | object | None:
        """Read one stored value with the checks a SpyCloud answer gets:
        a catalog, `MISSING`, `STALE` (past its life) or None (none, or
        one that does not fit: a miss, counted)."""
        if raw is None:
            return None
        try:
            value = loads(raw)
            stored = value.get("at") if isinstance(value, dict) else None
            if not isinstance(stored, (int, float)) \
                    or isinstance(stored, bool) or stored > now + 60:
                raise ValueError("no usable time")
            if value.get("missing") is True:
                return MISSING if now - stored < self.missing_ttl else STALE
            if now - stored >= self.ttl:
                return STALE
            catalog = parse_catalog(value.get("catalog"))
            if catalog.id != catalog_id:
                raise ValueError("the catalog of another id")
            return catalog
        except (ValueError, KeyError, TypeError) as error:
            self.redis.bad_value("catalog", error)
            return None

    def _store(self, client: redis.Redis, owner: str,
               found: list[Catalog], missing: list[int]) -> None:
        now = int(self._clock())
        fields: dict[str, bytes] = {
            str(c.id): dumps({"at": now, "catalog": catalog_payload(c)})
            for c in found}
        fields.update({str(i): dumps({"at": now, "missing": True})
                       for i in missing})
        name = key("catalogs", owner)
        if not self._renewals.due(name):
            client.hset(name, mapping=fields)  # type: ignore[arg-type]
            return
        with client.pipeline(transaction=False) as pipe:
            pipe.hset(name, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(name, 2 * self.ttl)
            pipe.execute()
