"""One observe request: fan out to SpyCloud, fetch catalogs, map the answers.

Each request has its own fan-out: greenlets of its own, at most the per-key
cap of them in flight, so no customer's request occupies capacity another's
needs; the transport's per-key limits bound what reaches SpyCloud. Catalogs
are fetched as each observable's records arrive, de-duplicated in flight
and through the catalog cache, and an observable is mapped as soon as its
catalogs are known, so a slow, failing or hanging observable costs the
others nothing: their entities come back whole. When the request answers,
whatever it still has in flight is stopped (its key slots given back).

One answer holds at most `answer_cap` sightings: each observable is asked
for its share of it, newest first, so records past it are never built.
Nothing here touches Flask: the key, options and budget arrive as
arguments.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import gevent
from gevent import Greenlet
from gevent.pool import Group
from gevent.queue import Empty, Queue

from . import ctim
from .options import Options
from .budget import Budget, out_of_time
from .catalog_cache import CatalogStore
from .digest import key_digest
from .envelope import Bundle, Written
from .errors import RelayError, warning
from .observables import Observable
from .records import Catalog, RecordFilter
from .records_cache import RecordsCache
from .spycloud import CATALOG_BATCH, Records, SpyCloud

log = logging.getLogger(__name__)

# SpyCloud's path segment for each observable type.
SELECTORS = {"email": "emails", "user": "usernames", "ip": "ips",
             "ipv6": "ips"}
# Every call ends by the budget (its I/O is interrupted when it runs out);
# this lets a call that ends right at the deadline report its own error.
GRACE = 0.1
STOP_WAIT = 1.0  # seconds to wait for stopped calls to give back their slots
UNEXPECTED = "An unexpected error occurred while answering for {value}."


@dataclass(frozen=True)
class Outcome:
    """How one task ended: its value, or the error it raised."""

    value: Any = None
    error: RelayError | None = None


Then = Callable[[Outcome], None]
# One call, in its greenlet (a string: gevent's class takes no subscript).
Task: TypeAlias = "Greenlet[[Callable[[], Any]], Outcome]"
# Turns one observable's records and the request's catalogs into a result.
Mapper = Callable[[Observable, Records, Mapping[int, Catalog]], Any]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Lookup:
    """Answers observe requests with one SpyCloud client and catalog cache."""

    def __init__(
        self,
        spycloud: SpyCloud,
        catalogs: CatalogStore,
        records: RecordsCache,
        *,
        fanout: int,
        answer_cap: int,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.spycloud = spycloud
        self.catalog_cache = catalogs
        self.records_cache = records
        self.fanout = fanout  # one request's tasks in flight at most
        self.answer_cap = answer_cap  # sightings in one answer at most
        self.clock = clock

    def observe(
        self,
        key: str,
        observables: Sequence[Observable],
        options: Options,
        budget: Budget,
    ) -> tuple[Bundle, list[RelayError]]:
        """Return the CTIM entities of *observables*, in order, and the
        errors met; everything is over when the budget is."""
        made: dict[int, dict[str, Any]] = {}  # this answer's Indicators
        bundle = Bundle()

        def entities(observable: Observable, found: Records,
                     catalogs: Mapping[int, Catalog]) -> Written:
            return bundle.write(ctim.observe(
                (observable.type, observable.value), found.records,
                catalogs, options.mask_passwords, made))

        mapped, errors = _Observe(self, key, observables, options, budget,
                                  entities).run()
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
        group = Group()
        tasks = [group.spawn(_capture, functools.partial(
            self.spycloud.catalog_batch, key, batch, budget))
            for batch in batches]
        group.join(timeout=budget.remaining() + GRACE)
        group.kill(timeout=STOP_WAIT)  # what the budget did not wait for
        for batch, task in zip(batches, tasks):
            ended: Outcome | None = task.value
            if ended is None:
                errors.append(out_of_time(budget))
            elif ended.error is not None:
                errors.append(ended.error)
            else:
                found.update(ended.value)
                missing.extend(self.remember(owner, batch, ended.value))
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

    Tasks run in greenlets of the request's own group; only the request's
    greenlet reacts to their ends (`_drain`), so this state needs no lock
    and no task waits on another. Each observable is handed to *mapper* as
    soon as its records and catalogs are known; a mapper that fails loses
    that observable only.
    """

    def __init__(self, lookup: Lookup, key: str,
                 observables: Sequence[Observable], options: Options,
                 budget: Budget, mapper: Mapper) -> None:
        self.lookup = lookup
        self.key = key
        self.owner = key_digest(key)
        self.observables = observables
        self.asked = options.entities_limit
        # Each observable's share of the answer: the newest records first.
        self.limit = min(self.asked,
                         max(1, lookup.answer_cap // max(1, len(observables))))
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
        self.fanout = lookup.fanout
        self.group = Group()
        self.pending: dict[Task, Then] = {}
        self.backlog: deque[tuple[Callable[[], Any], Then]] = deque()
        self.done: Queue[Task] = Queue()

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
            self._submit(functools.partial(self._read, observable),
                         functools.partial(self._records_done, index, key))
        try:
            if not self._drain():  # the budget ran out with calls open
                self.errors.append(out_of_time(self.budget))
        finally:
            # Nothing the request started outlives it: calls still in
            # flight are interrupted and give back their key slots.
            self.backlog.clear()
            self.group.kill(timeout=STOP_WAIT)
        return self._answer()

    def _read(self, observable: Observable) -> Records:
        return self.lookup.spycloud.records(
            self.key, SELECTORS[observable.type], observable.query,
            self.budget, self.limit, self.only)

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
            greenlet = self.group.spawn(_capture, task)
            self.pending[greenlet] = then
            greenlet.link(self.done.put)

    def _drain(self) -> bool:
        """React to tasks as they end; False if the budget ran out first."""
        while self.pending:
            try:
                ended = self.done.get(timeout=self.budget.remaining() + GRACE)
            except Empty:
                return False
            self.pending.pop(ended)(ended.value or Outcome(
                error=out_of_time(self.budget)))
            self._fill()
            if self.done.qsize():  # mapping is CPU work: let others run
                gevent.sleep(0)
        return True

    def _records_done(self, index: int, key: Hashable,
                      ended: Outcome) -> None:
        if ended.error is not None:
            self.found[index] = ended.error
            return
        self.lookup.records_cache.put(key, ended.value)
        self._records_found(index, ended.value)

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

    def _catalogs_done(self, batch: list[int], ended: Outcome) -> None:
        answer = ended.value
        if ended.error is not None:
            self.errors.append(ended.error)
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
        found = self.found[index]
        if not isinstance(found, Records):  # only records are mapped
            return
        observable = self.observables[index]
        try:
            self.mapped[index] = self.mapper(observable, found, self.catalogs)
        except Exception:  # a bug must not lose the other observables
            log.exception("unexpected failure while mapping an observable",
                          extra={"fields": {
                              "request_id": self.budget.request_id}})
            self.found[index] = RelayError(
                UNEXPECTED.format(value=observable.value))

    def _answer(self) -> tuple[list[Any], list[RelayError]]:
        """Assemble the answer in the order observables were sent; an
        observable whose catalogs never came is mapped without them."""
        mapped: list[Any] = []  # one per observable, None if not found
        errors: list[RelayError] = []
        max_pages = self.lookup.spycloud.max_pages
        left_out = 0
        for index, observable in enumerate(self.observables):
            if isinstance(self.found.get(index), Records) \
                    and index not in self.mapped:
                self._map(index)
            found = self.found.get(index)
            if not isinstance(found, Records):
                mapped.append(None)
                if found is not None:
                    errors.append(found)
                continue
            errors.extend(_notes(observable, found, max_pages))
            left_out += min(found.matched, self.asked) - len(found.records)
            mapped.append(self.mapped[index])
        if left_out:
            errors.append(warning(
                "too many results",
                f"One answer holds at most {self.lookup.answer_cap:,}"
                f" sightings: each observable kept its newest {self.limit:,},"
                f" and {left_out:,} older sighting(s) were left out.",
            ))
        errors.extend(self.errors)
        errors.extend(
            warning("not found", f"SpyCloud did not return results for {i}")
            for i in self.missing
        )
        return mapped, errors


def _capture(task: Callable[[], Any]) -> Outcome:
    """Run *task* in its greenlet; return its value or the error it raised
    (a greenlet that raised would print its traceback to stderr)."""
    try:
        return Outcome(value=task())
    except RelayError as error:
        return Outcome(error=error)
    except Exception:  # a bug must not lose the other observables' answers
        log.exception("unexpected failure while reading SpyCloud")
        return Outcome(error=RelayError("An unexpected error occurred."))


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
