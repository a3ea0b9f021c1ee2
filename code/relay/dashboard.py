"""The dashboard tiles of one customer: the watchlist read once per period.

The aggregate of one API-key digest and period is computed once, cached
for `TILES_CACHE_TTL` and single-flight: a dashboard opening its five
tiles at once costs one read of the watchlist. Only the aggregate (counts,
the top identities and breach titles) is cached, never raw records.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from . import tiles
from .budget import out_of_time
from .concurrency import Tasks, Turns
from .context import Context
from .errors import RelayError, warning
from .flights import SharedFlight, SingleFlight
from .catalog_cache import CatalogStore
from .catalogs import CatalogLoader
from .seal import Seal
from .spycloud import SpyCloud


class Dashboard:
    """Reads the watchlist and serves the tiles' data.

    The five tiles' data of one key and period are computed together and
    cached as plain JSON (`{"tiles": {id: data}, "warnings": [...]}`):
    in this process, and with *shared* across every replica.
    """

    def __init__(self, spycloud: SpyCloud, catalogs: CatalogStore,
                 ttl: float, max_pages: int, fanout: int,
                 clock: Callable[[], dt.datetime],
                 shared: SharedFlight | None = None) -> None:
        self.spycloud = spycloud
        self.catalogs = catalogs
        self.fanout = fanout  # one request's catalog calls out at once
        self.max_pages = max_pages
        self.clock = clock
        self.aggregates = SingleFlight(ttl)
        self.shared = shared

    def tile_data(self, ctx: Context, tile_id: str, period: str
                  ) -> tuple[dict[str, Any], list[RelayError]]:
        """Return one tile's data for *period*, and its warnings."""
        name = f"{ctx.digest}:{period}"

        def compute() -> dict[str, Any]:
            def aggregate() -> dict[str, Any]:
                return self._aggregate(ctx, period)
            if self.shared is None:
                return aggregate()
            return self.shared.get(name, aggregate, ctx.remaining(),
                                   Seal(ctx.key), complete)

        try:
            found = self.aggregates.get(name, compute,
                                        timeout=ctx.remaining(),
                                        keep=complete)
        except TimeoutError:
            raise out_of_time(ctx.budget) from None
        concern = found["warnings"] + (found["breach_warnings"]
                                       if tile_id == tiles.TOP_BREACHES else [])
        return found["tiles"][tile_id], [
            RelayError(w["message"], code=w["code"], type_=w["type"])
            for w in concern]

    def _aggregate(self, ctx: Context, period: str) -> dict[str, Any]:
        start, end = tiles.window(period, self.clock())
        exposure = tiles.Exposure(start, end, period in tiles.WEEKLY)
        rejected, capped = self.spycloud.watchlist(
            ctx, start.date(), self.max_pages, exposure.add)
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
        with Tasks() as tasks:
            loader = CatalogLoader(self.spycloud, self.catalogs, ctx, tasks,
                                   Turns(self.fanout))
            found = loader.load(exposure.top_breaches())
        errors = [*loader.errors, *([out_of_time(ctx.budget)]
                                    if loader.late else [])]
        about_breaches = [*errors, *(
            warning("not found", f"SpyCloud did not return results for {i}")
            for i in loader.missing)]
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
