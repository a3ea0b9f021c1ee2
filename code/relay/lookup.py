"""One observe request: fan out to SpyCloud, fetch catalogs, map the answers.

Each request has its own fan-out (at most the per-key cap of tasks in
flight, on threads that are never all taken), so no customer's request
occupies capacity another's needs; the transport's per-key limits bound
what reaches SpyCloud. Catalogs are fetched as each
observable's records arrive, de-duplicated in flight and through the
catalog cache, and an observable is mapped as soon as its catalogs are
known, so a slow, failing or hanging observable costs the others nothing:
their entities come back whole. Records are kept in a bounded heap of the
newest `limit` while their pages arrive. Nothing here touches Flask: the
key, limit and budget arrive as arguments.
"""

from __future__ import annotations

import logging
import queue
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from . import ctim
from .budget import Budget
from .catalog_cache import CatalogCache
from .envelope import Bundle
from .errors import RelayError, warning
from .observables import Observable
from .records import Catalog
from .spycloud import CATALOG_BATCH, Records, SpyCloud
from .transport import key_digest, out_of_time

log = logging.getLogger(__name__)

# SpyCloud's path segment for each observable type.
SELECTORS = {"email": "emails"}
# Every call ends by the budget (its timeouts are cut to what is left); this
# lets a call that ends right at the deadline report its own error.
GRACE = 0.1
POOL_THREADS = 1024  # above gunicorn's threads × the per-key cap

Entities = dict[str, list[dict[str, Any]]]
Then = Callable[[Future], None]


class Lookup:
    """Answers observe requests with one SpyCloud client and catalog cache."""

    def __init__(self, spycloud: SpyCloud, catalogs: CatalogCache) -> None:
        self.spycloud = spycloud
        self.catalog_cache = catalogs
        # Threads start as tasks need them and are reused. Each request keeps
        # at most the per-key cap of tasks here, so with this many threads
        # no request's task ever queues behind another request's.
        self.pool = ThreadPoolExecutor(POOL_THREADS, "lookup")

    def observe(
        self,
        key: str,
        observables: Sequence[Observable],
        limit: int,
        budget: Budget,
    ) -> tuple[Bundle, list[RelayError]]:
        """Return the CTIM entities of *observables*, in order, and the
        errors met; everything is over when the budget is."""
        request = _Observe(self, key, observables, limit, budget)
        return request.run()


class _Observe:
    """The state of one observe request.

    Tasks run on the request's own threads; only the request's thread
    reacts to their ends (`_drain`), so this state needs no lock and no
    task waits on another.
    """

    def __init__(self, lookup: Lookup, key: str,
                 observables: Sequence[Observable], limit: int,
                 budget: Budget) -> None:
        self.lookup = lookup
        self.key = key
        self.owner = key_digest(key)
        self.observables = observables
        self.limit = limit
        self.budget = budget
        self.found: dict[int, Records | RelayError] = {}
        self.mapped: dict[int, Entities] = {}
        self.catalogs: dict[int, Catalog] = {}
        self.missing: dict[int, None] = {}
        self.errors: list[RelayError] = []
        # Catalog ids asked for and not yet answered → observables waiting.
        self.awaited: dict[int, list[int]] = {}
        self.waiting: dict[int, int] = {}  # observable → ids it awaits
        self.resolved: set[int] = set()
        # Never more of the request's tasks in flight than the per-key cap
        # can serve at once; the rest wait in the request's own backlog.
        self.fanout = lookup.spycloud.transport.limits.cap
        self.pending: dict[Future, Then] = {}
        self.backlog: deque[tuple[Callable[[], Any], Then]] = deque()
        self.done: queue.SimpleQueue[Future] = queue.SimpleQueue()

    def run(self) -> tuple[Bundle, list[RelayError]]:
        for index, observable in enumerate(self.observables):
            self._submit(
                lambda o=observable: self.lookup.spycloud.records(
                    self.key, SELECTORS[o.type], o.query, self.budget,
                    self.limit),
                lambda future, i=index: self._records_done(i, future),
            )
        if not self._drain():  # the budget ran out with calls open
            self.errors.append(out_of_time(self.budget))
            for future in self.pending:
                future.cancel()
        return self._answer()

    def _submit(self, task: Callable[[], Any], then: Then,
                urgent: bool = False) -> None:
        """Start *task* once fewer than the cap of the request's tasks run;
        an urgent one (a catalog, which whole observables wait on) first."""
        if urgent:
            self.backlog.appendleft((task, then))
        else:
            self.backlog.append((task, then))
        self._fill()

    def _fill(self) -> None:
        while self.backlog and len(self.pending) < self.fanout:
            task, then = self.backlog.popleft()
            future = self.lookup.pool.submit(task)
            self.pending[future] = then
            future.add_done_callback(self.done.put)

    def _drain(self) -> bool:
        """React to tasks as they end; False if the budget ran out first."""
        while self.pending:
            try:
                future = self.done.get(timeout=self.budget.remaining() + GRACE)
            except queue.Empty:
                return False
            self.pending.pop(future)(future)
            self._fill()
        return True

    def _records_done(self, index: int, future: Future) -> None:
        found = _result(future)
        self.found[index] = found
        if isinstance(found, RelayError):
            return
        ids = list(dict.fromkeys(r.source_id for r in found.records))
        fresh = [i for i in ids if i not in self.resolved
                 and i not in self.awaited]
        cached, missing, todo = self.lookup.catalog_cache.lookup(
            self.owner, fresh)
        self._resolve(cached, missing)
        for start in range(0, len(todo), CATALOG_BATCH):
            self._fetch(todo[start:start + CATALOG_BATCH])
        self.waiting[index] = 0
        for catalog_id in ids:
            if catalog_id not in self.resolved:
                self.awaited[catalog_id].append(index)
                self.waiting[index] += 1
        if not self.waiting[index]:
            self._map(index)

    def _fetch(self, batch: list[int]) -> None:
        for catalog_id in batch:
            self.awaited[catalog_id] = []
        self._submit(
            lambda: self.lookup.spycloud.catalog_batch(
                self.key, batch, self.budget),
            lambda future: self._catalogs_done(batch, future),
            urgent=True,
        )

    def _catalogs_done(self, batch: list[int], future: Future) -> None:
        answer = _result(future)
        if isinstance(answer, RelayError):
            self.errors.append(answer)
            answer = {}
        else:
            gone = [i for i in batch if i not in answer]
            self.lookup.catalog_cache.store(self.owner, answer.values(), gone)
            self.missing.update(dict.fromkeys(gone))
        self.catalogs.update(answer)
        for catalog_id in batch:
            self.resolved.add(catalog_id)
            for index in self.awaited.pop(catalog_id):
                self.waiting[index] -= 1
                if not self.waiting[index]:
                    self._map(index)

    def _resolve(self, cached: dict[int, Catalog], missing: list[int]) -> None:
        self.catalogs.update(cached)
        self.missing.update(dict.fromkeys(missing))
        self.resolved.update(cached)
        self.resolved.update(missing)

    def _map(self, index: int) -> None:
        found: Records = self.found[index]  # only a Records is ever mapped
        self.mapped[index] = ctim.observe(
            self.observables[index].value, found.records, self.catalogs)

    def _answer(self) -> tuple[Bundle, list[RelayError]]:
        """Assemble the answer in the order observables were sent; an
        observable whose catalogs never came is mapped without them."""
        bundle = Bundle()
        errors: list[RelayError] = []
        max_pages = self.lookup.spycloud.max_pages
        for index, observable in enumerate(self.observables):
            found = self.found.get(index)
            if isinstance(found, RelayError):
                errors.append(found)
            elif found is not None:
                errors.extend(_notes(observable, found, max_pages))
                if index not in self.mapped:
                    self._map(index)
                bundle.add(self.mapped[index])
        errors.extend(self.errors)
        errors.extend(
            warning("not found", f"SpyCloud did not return results for {i}")
            for i in self.missing
        )
        return bundle, errors


def _result(future: Future) -> Any:
    """Return a task's value, or the error it raised."""
    try:
        return future.result()
    except RelayError as error:
        return error
    except Exception:  # a bug must not lose the other observables' answers
        log.exception("unexpected failure while reading SpyCloud")
        return RelayError("An unexpected error occurred.")


def _notes(
    observable: Observable, found: Records, max_pages: int
) -> list[RelayError]:
    """The analyst-facing warnings of one observable's records."""
    notes = []
    if found.rejected:
        notes.append(warning(
            "invalid result",
            f"SpyCloud returned {found.rejected} unusable record(s) for"
            f" {observable.value}; they are left out.",
        ))
    if found.capped:
        notes.append(warning(
            "too many results",
            f"SpyCloud holds more records for {observable.value} than the"
            f" relay reads ({max_pages} pages); older records were not read.",
        ))
    return notes
