"""One observe request: fan out to SpyCloud, fetch catalogs, map the answers.

Each request has its own fan-out (at most the per-key cap of threads), so
no customer's request occupies threads another's needs; the transport's
per-key limits bound what reaches SpyCloud. Catalogs are fetched as each
observable's records arrive, de-duplicated in flight and through the
catalog cache, so a slow, failing or hanging observable costs the others
nothing: their entities come back whole. Records are kept in a bounded heap
of the newest `limit` while their pages arrive. Nothing here touches Flask:
the key, limit and budget arrive as arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from . import ctim
from .budget import Budget
from .catalog_cache import CatalogCache
from .envelope import Bundle
from .errors import RelayError, warning
from .observables import Observable
from .records import Catalog, Record
from .spycloud import CATALOG_BATCH, SpyCloud
from .transport import key_digest, out_of_time

log = logging.getLogger(__name__)

# SpyCloud's path segment for each observable type.
SELECTORS = {"email": "emails"}
# Every call ends by the budget (its timeouts are cut to what is left); this
# lets a call that ends right at the deadline report its own error.
GRACE = 0.1


@dataclass(frozen=True)
class Found:
    """What SpyCloud holds for one observable, cut to the entity limit."""

    records: list[Record]
    rejected: int
    capped: bool


@dataclass
class _Request:
    """The state of one observe request, touched by its own thread only."""

    found: dict[int, Found | RelayError] = field(default_factory=dict)
    catalogs: dict[int, Catalog] = field(default_factory=dict)
    missing: dict[int, None] = field(default_factory=dict)
    asked: set[int] = field(default_factory=set)
    errors: list[RelayError] = field(default_factory=list)


class Lookup:
    """Answers observe requests with one SpyCloud client and catalog cache."""

    def __init__(self, spycloud: SpyCloud, catalogs: CatalogCache) -> None:
        self.spycloud = spycloud
        self.catalog_cache = catalogs

    def observe(
        self,
        key: str,
        observables: Sequence[Observable],
        limit: int,
        budget: Budget,
    ) -> tuple[Bundle, list[RelayError]]:
        """Return the CTIM entities of *observables*, in order, and the
        errors met; everything is over when the budget is."""
        state = _Request()
        owner = key_digest(key)
        fanout = _Fanout(self.spycloud.transport.limits.cap)

        def records_done(index: int) -> Callable[[Future], list]:
            def then(future: Future) -> list:
                answer = _result(future)
                state.found[index] = answer
                if isinstance(answer, RelayError):
                    return []
                return self._catalog_tasks(key, owner, answer, state, budget)
            return then

        for index, observable in enumerate(observables):
            fanout.submit(self._reader(key, observable, limit, budget),
                          records_done(index))
        if not fanout.run(budget):  # the budget ran out with calls open
            state.errors.append(out_of_time(budget))
        return self._bundle(observables, state)

    def _reader(
        self, key: str, observable: Observable, limit: int, budget: Budget
    ) -> Callable[[], Found]:
        def read() -> Found:
            newest = ctim.Newest(limit)
            rejected = 0
            capped = False
            for page in self.spycloud.record_pages(
                key, SELECTORS[observable.type], observable.query, budget
            ):
                newest.add(page.records)
                rejected += page.rejected
                capped = page.capped
            return Found(newest.records(), rejected, capped)
        return read

    def _catalog_tasks(
        self, key: str, owner: str, found: Found, state: _Request,
        budget: Budget,
    ) -> list[tuple[Callable, Callable]]:
        """Return the catalog calls this observable needs that no cache
        holds and no other observable of the request has asked for."""
        ids = [i for i in dict.fromkeys(r.source_id for r in found.records)
               if i not in state.asked]
        state.asked.update(ids)
        cached, missing, todo = self.catalog_cache.lookup(owner, ids)
        state.catalogs.update(cached)
        state.missing.update(dict.fromkeys(missing))
        tasks = []
        for start in range(0, len(todo), CATALOG_BATCH):
            batch = todo[start:start + CATALOG_BATCH]

            def fetch(batch: list[int] = batch) -> dict[int, Catalog]:
                return self.spycloud.catalog_batch(key, batch, budget)

            def then(future: Future, batch: list[int] = batch) -> list:
                answer = _result(future)
                if isinstance(answer, RelayError):
                    state.errors.append(answer)
                    return []
                gone = [i for i in batch if i not in answer]
                self.catalog_cache.store(owner, answer.values(), gone)
                state.catalogs.update(answer)
                state.missing.update(dict.fromkeys(gone))
                return []
            tasks.append((fetch, then))
        return tasks

    def _bundle(
        self, observables: Sequence[Observable], state: _Request
    ) -> tuple[Bundle, list[RelayError]]:
        max_pages = self.spycloud.max_pages
        bundle = Bundle()
        errors: list[RelayError] = []
        for index, observable in enumerate(observables):
            found = state.found.get(index)
            if isinstance(found, RelayError):
                errors.append(found)
            elif found is not None:
                errors.extend(_notes(observable, found, max_pages))
                bundle.add(ctim.observe(
                    observable.value, found.records, state.catalogs
                ))
        errors.extend(state.errors)
        errors.extend(
            warning("not found", f"SpyCloud did not return results for {i}")
            for i in state.missing
        )
        return bundle, errors


class _Fanout:
    """One request's own threads, and what to do as each task ends.

    Only the request's thread reacts to finished tasks (`then` returns
    further tasks to start), so the request's state needs no lock and no
    task waits on another.
    """

    def __init__(self, threads: int) -> None:
        # Threads start only as tasks need them, at most *threads*.
        self._pool = ThreadPoolExecutor(threads, "lookup")
        self._pending: dict[Future, Callable[[Future], list]] = {}

    def submit(self, task: Callable, then: Callable[[Future], list]) -> None:
        """Start *task*; call *then* with its future once it is done."""
        self._pending[self._pool.submit(task)] = then

    def run(self, budget: Budget) -> bool:
        """React to tasks as they end; return False if the budget ran out
        first."""
        try:
            while self._pending:
                done, _ = wait(self._pending,
                               timeout=budget.remaining() + GRACE,
                               return_when=FIRST_COMPLETED)
                if not done:
                    return False
                for future in done:
                    for task, then in self._pending.pop(future)(future):
                        self.submit(task, then)
            return True
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _result(future: Future) -> object:
    """Return a task's value, or the error it raised."""
    try:
        return future.result()
    except RelayError as error:
        return error
    except Exception:  # a bug must not lose the other observables' answers
        log.exception("unexpected failure while reading SpyCloud")
        return RelayError("An unexpected error occurred.")


def _notes(
    observable: Observable, found: Found, max_pages: int
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
