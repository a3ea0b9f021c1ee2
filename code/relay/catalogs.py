"""The breach catalogs one request needs, loaded as its greenlets ask.

The DataLoader pattern (graphql/dataloader): the ids asked for within one
turn of the event loop are looked up in the catalog cache together, and
those it lacks are fetched ten a call; an id already asked for is awaited,
never fetched twice. Observe, refer and the dashboard all load their
catalogs this way; whatever SpyCloud returned, and the ids it did not, are
remembered in the cache for the customer's next requests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .budget import GRACE
from .catalog_cache import CatalogStore
from .concurrency import Future, Tasks
from .context import Context
from .errors import RelayError
from .records import Catalog
from .spycloud import CATALOG_BATCH, SpyCloud

log = logging.getLogger(__name__)


class CatalogLoader:
    """The catalogs of one request: `load` waits for its ids, by the
    budget, while the loader batches every id its greenlets ask for.

    What it met stays readable once the request is done: `missing` (ids
    SpyCloud does not have, in the order met), `errors` (failed catalog
    calls) and `late` (some catalog did not come by the budget).
    """

    def __init__(self, spycloud: SpyCloud, cache: CatalogStore,
                 ctx: Context, tasks: Tasks) -> None:
        self._spycloud = spycloud
        self._cache = cache
        self._ctx = ctx
        self._tasks = tasks
        self._asked: dict[int, Future[Catalog | None]] = {}
        self._queue: list[int] = []
        self.missing: dict[int, None] = {}
        self.errors: list[RelayError] = []
        self.late = False

    def load(self, ids: Iterable[int]) -> dict[int, Catalog]:
        """Return the catalogs of *ids* that exist, as known by the budget
        (a catalog still on its way then is left out, and `late` set)."""
        wanted = list(dict.fromkeys(ids))
        for catalog_id in wanted:
            if catalog_id not in self._asked:
                self._asked[catalog_id] = Future()
                if not self._queue:  # the first of this turn: dispatch soon
                    self._tasks.spawn(self._dispatch)
                self._queue.append(catalog_id)
        found: dict[int, Catalog] = {}
        for catalog_id in wanted:
            future = self._asked[catalog_id]
            if not future.wait(self._ctx.remaining() + GRACE):
                self.late = True
                continue
            catalog = future.value()
            if catalog is not None:
                found[catalog_id] = catalog
        return found

    def _dispatch(self) -> None:
        """Look up this turn's ids in the cache, and fetch the others."""
        queued, self._queue = self._queue, []
        try:
            cached, missing, todo = self._cache.lookup(self._ctx.digest,
                                                       queued)
        except Exception:  # a bug must not leave the waiters waiting
            log.exception("unexpected failure while reading the catalog"
                          " cache")
            cached, missing, todo = {}, [], queued
        self.missing.update(dict.fromkeys(missing))
        for catalog_id in [*cached, *missing]:
            self._asked[catalog_id].set(cached.get(catalog_id))
        for start in range(0, len(todo), CATALOG_BATCH):
            self._tasks.spawn(self._fetch, todo[start:start + CATALOG_BATCH])

    def _fetch(self, batch: list[int]) -> None:
        """Fetch one batch, remember what SpyCloud said, wake its waiters."""
        answer: dict[int, Catalog] = {}
        try:
            answer = self._spycloud.catalog_batch(self._ctx, batch)
            gone = [i for i in batch if i not in answer]
            self._cache.store(self._ctx.digest, answer.values(), gone)
            self.missing.update(dict.fromkeys(gone))
        except RelayError as error:  # not remembered: a failure is no fact
            self.errors.append(error)
        except Exception:  # a bug must not lose the other observables
            log.exception("unexpected failure while reading SpyCloud",
                          extra={"fields": {
                              "request_id": self._ctx.request_id}})
            self.errors.append(RelayError("An unexpected error occurred."))
        finally:  # stopped or not, nobody waits for this batch any more
            for catalog_id in batch:
                self._asked[catalog_id].set(answer.get(catalog_id))
