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

from .budget import GRACE, out_of_time
from .catalog_cache import CatalogStore
from .concurrency import Future, Tasks, Turns
from .context import Context
from .errors import RelayError
from .limits import Kept
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
                 ctx: Context, tasks: Tasks, turns: Turns) -> None:
        self._spycloud = spycloud
        self._cache = cache
        self._ctx = ctx
        self._tasks = tasks
        # The request's turns: a catalog call, which whole observables
        # wait on, takes one before any waiting record call.
        self._turns = turns
        self._asked: dict[int, Future[Catalog | None]] = {}
        self._queue: list[int] = []
        # Turns handed over by callers, with their kept slots of the key's
        # cap, for the fetches.
        self._handed: list[Kept] = []
        self.missing: dict[int, None] = {}
        self.errors: list[RelayError] = []
        self.late = False

    def load(self, ids: Iterable[int],
             handed: Kept | None = None) -> dict[int, Catalog]:
        """Return the catalogs of *ids* that exist, as known by the budget
        (a catalog still on its way then is left out, and `late` set).

        A caller holding one of the request's turns hands it over, with
        the slot of the key's cap it *kept* (`handed`): to the fetch of the
        ids it asks first, so that fetch goes out as the caller's own call
        ends, or back to the request's turns and the key's cap."""
        wanted = list(dict.fromkeys(ids))
        fresh = [i for i in wanted if i not in self._asked]
        for catalog_id in fresh:
            self._asked[catalog_id] = Future()
        if fresh:
            if not self._queue:  # the first of this loop turn: dispatch soon
                self._tasks.spawn(self._dispatch)
            self._queue.extend(fresh)
        if handed is not None and fresh:
            self._handed.append(handed)
        elif handed is not None:
            handed.give_back()
            self._turns.give()
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
        # This turn's ids and hand-overs: those of the callers that ask
        # while the cache is read go to the next dispatch.
        queued, self._queue = self._queue, []
        handed, self._handed = self._handed, []
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
            self._tasks.spawn(self._fetch, todo[start:start + CATALOG_BATCH],
                              handed.pop(0) if handed else None)
        for kept in handed:  # more handed over than fetches
            kept.give_back()
            self._turns.give()

    def _fetch(self, batch: list[int], handed: Kept | None) -> None:
        """Fetch one batch, remember what SpyCloud said, wake its waiters;
        with a turn *handed* over (and its kept slot), or else one taken
        before any waiting record call of the request."""
        answer: dict[int, Catalog] = {}
        turn = handed is not None
        try:
            turn = turn or self._turns.take(self._ctx.remaining(),
                                            urgent=True)
            if not turn:
                raise out_of_time(self._ctx.budget)
            answer = self._spycloud.catalog_batch(self._ctx, batch, handed)
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
            if handed is not None:
                handed.give_back()
            if turn:
                self._turns.give()
            for catalog_id in batch:
                self._asked[catalog_id].set(answer.get(catalog_id))
