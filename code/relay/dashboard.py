"""The dashboard tiles of one customer: the watchlist read once per period.

The aggregate of one API-key digest and period is computed once, cached
for `TILES_CACHE_TTL` and single-flight: a dashboard opening its five
tiles at once costs one read of the watchlist. Only the aggregate (counts,
the top identities and breach titles) is cached, never raw records.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

from cachetools import TTLCache

from . import metrics, tiles
from .budget import Budget
from .errors import RelayError, warning
from .lookup import Lookup
from .shared import Seal, SharedFlight
from .transport import key_digest, out_of_time


class SingleFlight:
    """A TTL cache whose misses are computed once, however many ask."""

    def __init__(self, ttl: float, size: int = 1024) -> None:
        self._cache: TTLCache = TTLCache(maxsize=size, ttl=ttl)
        self._flights: dict[Hashable, Future] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any],
            timeout: float, keep: Callable[[Any], bool] = lambda _: True,
            ) -> Any:
        """Return the cached value of *key*, computing it (once) if needed;
        a caller that finds it being computed waits at most *timeout*. A
        value *keep* refuses (it met a failure) serves the callers already
        waiting for it, and is not cached."""
        with self._lock:
            if key in self._cache:
                metrics.cache("tiles", 1, 0)
                return self._cache[key]
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = Future()
        metrics.cache("tiles", not leader, leader)
        if not leader:
            return flight.result(timeout=timeout)
        try:
            value = compute()
        except BaseException as error:
            flight.set_exception(error)
            raise
        else:
            flight.set_result(value)
            if keep(value):
                with self._lock:
                    self._cache[key] = value
            return value
        finally:
            with self._lock:
                del self._flights[key]


class Dashboard:
    """Reads the watchlist and serves the tiles' data.

    The five tiles' data of one key and period are computed together and
    cached as plain JSON (`{"tiles": {id: data}, "warnings": [...]}`):
    in this process, and with *shared* across every replica.
    """

    def __init__(self, lookup: Lookup, ttl: float, max_pages: int,
                 clock: Callable[[], dt.datetime],
                 shared: SharedFlight | None = None) -> None:
        self.lookup = lookup
        self.max_pages = max_pages
        self.clock = clock
        self.aggregates = SingleFlight(ttl)
        self.shared = shared

    def tile_data(self, key: str, tile_id: str, period: str,
                  budget: Budget) -> tuple[dict[str, Any], list[RelayError]]:
        """Return one tile's data for *period*, and its warnings."""
        name = f"{key_digest(key)}:{period}"

        def compute() -> dict[str, Any]:
            def aggregate() -> dict[str, Any]:
                return self._aggregate(key, period, budget)
            if self.shared is None:
                return aggregate()
            return self.shared.get(name, aggregate, budget.remaining(),
                                   Seal(key), complete)

        try:
            found = self.aggregates.get(name, compute,
                                        timeout=budget.remaining(),
                                        keep=complete)
        except TimeoutError:
            raise out_of_time(budget) from None
        concern = found["warnings"] + (found["breach_warnings"]
                                       if tile_id == tiles.TOP_BREACHES else [])
        return found["tiles"][tile_id], [
            RelayError(w["message"], code=w["code"], type_=w["type"])
            for w in concern]

    def _aggregate(self, key: str, period: str,
                   budget: Budget) -> dict[str, Any]:
        start, end = tiles.window(period, self.clock())
        exposure = tiles.Exposure(start, end, period in tiles.WEEKLY)
        rejected, capped = self.lookup.spycloud.watchlist(
            key, start.date(), budget, self.max_pages, exposure.add)
        notes: list[RelayError] = []
        if capped:
            notes.append(warning(
                "too many results",
                f"The watchlist holds more records than the relay reads"
                f" ({self.max_pages} pages); the figures cover the newest"
                " pages read."))
        if rejected:
            notes.append(warning(
                "invalid result",
                f"SpyCloud returned {rejected} unusable watchlist record(s);"
                " they are left out."))
        # The catalogs name the top breaches: what went wrong reading them
        # concerns that tile only.
        found, missing, errors = self.lookup.catalogs(
            key, exposure.top_breaches(), budget)
        about_breaches = [*errors, *(
            warning("not found", f"SpyCloud did not return results for {i}")
            for i in missing)]
        titles = {i: c.title for i, c in found.items()}
        return {"tiles": {tile_id: tiles.tile_data(tile_id, exposure, titles)
                          for tile_id in tiles.TILES},
                "warnings": [note.json() for note in notes],
                "breach_warnings": [note.json() for note in about_breaches],
                # A SpyCloud failure is not a fact worth remembering.
                "complete": not errors}


def complete(aggregate: dict[str, Any]) -> bool:
    """Say whether an aggregate met no SpyCloud failure (it may be cached)."""
    return bool(aggregate.get("complete"))
