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

import datetime as dt
import logging
import queue
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from . import ctim
from .budget import Budget
from .catalog_cache import CatalogCache
from .envelope import Bundle
from .errors import RelayError, warning
from .auth import Options
from .observables import Observable
from .records import Catalog, RecordFilter
from .records_cache import RecordsCache
from .spycloud import CATALOG_BATCH, Records, SpyCloud
from .transport import key_digest, out_of_time

log = logging.getLogger(__name__)

# SpyCloud's path segment for each observable type.
SELECTORS = {"email": "emails", "user": "usernames", "ip": "ips",
             "ipv6": "ips"}
# Every call ends by the budget (its timeouts are cut to what is left); this
# lets a call that ends right at the deadline report its own error.
GRACE = 0.1
POOL_THREADS = 1024  # above gunicorn's threads × the per-key cap

Entities = dict[str, list[dict[str, Any]]]
Then = Callable[[Future], None]
# Turns one observable's records and the request's catalogs into a result.
Mapper = Callable[[Observable, Records, Mapping[int, Catalog]], Any]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Lookup:
    """Answers observe requests with one SpyCloud client and catalog cache."""

    def __init__(
        self,
        spycloud: SpyCloud,
        catalogs: CatalogCache,
        records: RecordsCache,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.spycloud = spycloud
        self.catalog_cache = catalogs
        self.records_cache = records
        self.clock = clock
        # Threads start as tasks need them and are reused. Each request keeps
        # at most the per-key cap of tasks here, so with this many threads
        # no request's task ever queues behind another request's.
        self.pool = ThreadPoolExecutor(POOL_THREADS, "lookup")

    def observe(
        self,
        key: str,
        observables: Sequence[Observable],
        options: Options,
        budget: Budget,
    ) -> tuple[Bundle, list[RelayError]]:
        """Return the CTIM entities of *observables*, in order, and the
        errors met; everything is over when the budget is."""
        def entities(observable: Observable, found: Records,
                     catalogs: Mapping[int, Catalog]) -> Entities:
            return ctim.observe((observable.type, observable.value),
                                found.records, catalogs,
                                options.mask_passwords)

        mapped, errors = _Observe(self, key, observables, options, budget,
                                  entities).run()
        bundle = Bundle()
        for each in mapped:
            if each is not None:
                bundle.add(each)
        return bundle, errors

    def breaches(
        self,
        key: str,
        observables: Sequence[Observable],
        options: Options,
        budget: Budget,
    ) -> tuple[list[list[Catalog] | None], list[RelayError]]:
        """Return, per observable (None where SpyCloud failed), the catalogs
        of the breaches it appears in, newest first: refer's Browse links."""
        def catalogs_of(observable: Observable, found: Records,
                        catalogs: Mapping[int, Catalog]) -> list[Catalog]:
            ids = dict.fromkeys(r.source_id for r in found.records)
            return [catalogs[i] for i in ids if i in catalogs]

        return _Observe(self, key, observables, options, budget,
                        catalogs_of).run()

    def catalogs(
        self, key: str, ids: Sequence[int], budget: Budget
    ) -> tuple[dict[int, Catalog], list[int], list[RelayError]]:
        """Return the catalogs of *ids* through the cache, the rest in
        concurrent batches: (found, missing ids, errors)."""
        owner = key_digest(key)
        found, missing, todo = self.catalog_cache.lookup(owner, ids)
        errors: list[RelayError] = []
        batches = [todo[i:i + CATALOG_BATCH]
                   for i in range(0, len(todo), CATALOG_BATCH)]
        futures = [self.pool.submit(self.spycloud.catalog_batch, key, batch,
                                    budget) for batch in batches]
        for batch, future in zip(batches, futures):
            try:
                answer = future.result(timeout=budget.remaining() + GRACE)
            except RelayError as error:
                errors.append(error)
                continue
            except TimeoutError:
                errors.append(out_of_time(budget))
                continue
            found.update(answer)
            missing.extend(self.remember(owner, batch, answer))
        return found, missing, errors

    def remember(self, owner: str, batch: Sequence[int],
                 answer: Mapping[int, Catalog]) -> list[int]:
        """Cache a catalog batch's answer; return the ids SpyCloud lacks."""
        gone = [i for i in batch if i not in answer]
        self.catalog_cache.store(owner, answer.values(), gone)
        return gone

    def filter(self, options: Options) -> RecordFilter:
        """Return the records a module's options ask for."""
        since = None
        if options.lookback_days:
            today = self.clock().astimezone(dt.timezone.utc).date()
            since = today - dt.timedelta(days=options.lookback_days)
        return RecordFilter(options.min_severity, since)


class _Observe:
    """The state of one request's lookup.

    Tasks run on the lookup's threads; only the request's thread reacts to
    their ends (`_drain`), so this state needs no lock and no task waits on
    another. Each observable is handed to *mapper* as soon as its records
    and catalogs are known.
    """

    def __init__(self, lookup: Lookup, key: str,
                 observables: Sequence[Observable], options: Options,
                 budget: Budget, mapper: Mapper) -> None:
        self.lookup = lookup
        self.key = key
        self.owner = key_digest(key)
        self.observables = observables
        self.limit = options.entities_limit
        self.only = lookup.filter(options)
        self.budget = budget
        self.mapper = mapper
        self.found: dict[int, Records | RelayError] = {}
        self.mapped: dict[int, Any] = {}
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

    def run(self) -> tuple[list[Any], list[RelayError]]:
        """Return what *mapper* made of each observable, in the order sent
        (None where it could not be read), and the errors met."""
        for index, observable in enumerate(self.observables):
            key = (self.owner, observable.type, observable.query, self.limit,
                   self.only)
            cached = self.lookup.records_cache.get(key)
            if cached is not None:
                self._records_found(index, cached)
                continue
            self._submit(
                lambda o=observable: self.lookup.spycloud.records(
                    self.key, SELECTORS[o.type], o.query, self.budget,
                    self.limit, self.only),
                lambda future, i=index, k=key: self._records_done(
                    i, k, future),
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

    def _records_done(self, index: int, key: Hashable,
                      future: Future) -> None:
        found = _result(future)
        if isinstance(found, RelayError):
            self.found[index] = found
            return
        self.lookup.records_cache.put(key, found)
        self._records_found(index, found)

    def _records_found(self, index: int, found: Records) -> None:
        self.found[index] = found
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
            self.missing.update(dict.fromkeys(
                self.lookup.remember(self.owner, batch, answer)))
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
        self.mapped[index] = self.mapper(
            self.observables[index], found, self.catalogs)

    def _answer(self) -> tuple[list[Any], list[RelayError]]:
        """Assemble the answer in the order observables were sent; an
        observable whose catalogs never came is mapped without them."""
        mapped: list[Any] = []  # one per observable, None if not found
        errors: list[RelayError] = []
        max_pages = self.lookup.spycloud.max_pages
        for index, observable in enumerate(self.observables):
            found = self.found.get(index)
            if not isinstance(found, Records):
                mapped.append(None)
                if found is not None:
                    errors.append(found)
            else:
                errors.extend(_notes(observable, found, max_pages))
                if index not in self.mapped:
                    self._map(index)
                mapped.append(self.mapped[index])
        errors.extend(self.errors)
        errors.extend(
            warning("not found", f"SpyCloud did not return results for {i}")
            for i in self.missing
        )
        return mapped, errors


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
