"""One observe (or refer) request: each observable looked up in a greenlet
of its own, start to end: its records, then their catalogs, then mapped.

A slow, failing or hanging observable costs the others nothing: their
entities come back whole. At most the per-key cap of a request's calls
are out at once (its `Turns`), so no request occupies capacity another
needs; catalogs come through the request's `CatalogLoader`, which
batches what its observables ask for, and a catalog call (whole
observables wait on it) goes before the request's waiting record calls.
When the request answers, whatever it still has running is stopped (its
key slots given back).

One answer holds at most `answer_cap` sightings: each observable is asked
for its share of it, newest first, so records past it are never built.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import ctim
from .budget import GRACE, out_of_time
from .catalog_cache import CatalogStore
from .catalogs import CatalogLoader
from .concurrency import Tasks, Turns
from .context import Context
from .errors import RelayError, warning
from .jsonio import Bundle, Written
from .limits import Kept
from .observables import Observable
from .options import Options
from .records import Catalog, RecordFilter
from .records_cache import RecordsCache
from .spycloud import Records, SpyCloud

log = logging.getLogger(__name__)

T = TypeVar("T")
# Turns one observable's records and their catalogs into a result.
Mapper = Callable[[Observable, Records, Mapping[int, Catalog]], T]
UNEXPECTED = "An unexpected error occurred while answering for {value}."


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class Found(Generic[T]):
    """One observable's records, and what the mapper made of them."""

    records: Records
    mapped: T


class Lookup:
    """Answers observe and refer requests from SpyCloud and the caches."""

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
        self.fanout = fanout  # one request's observables read at once
        self.answer_cap = answer_cap  # sightings in one answer at most
        self.clock = clock

    def observe(
        self, ctx: Context, observables: Sequence[Observable],
        options: Options,
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

        written, errors = self._each(ctx, observables, options, entities)
        for each in written:
            if each is not None:
                bundle.add(each)
        return bundle, errors

    def breaches(
        self, ctx: Context, observables: Sequence[Observable],
        options: Options,
    ) -> tuple[list[list[Catalog] | None], list[RelayError]]:
        """Return, per observable (None where SpyCloud failed), the catalogs
        of the breaches it appears in, newest first: refer's Browse links."""
        def catalogs_of(observable: Observable, found: Records,
                        catalogs: Mapping[int, Catalog]) -> list[Catalog]:
            ids = dict.fromkeys(r.source_id for r in found.records)
            return [catalogs[i] for i in ids if i in catalogs]

        return self._each(ctx, observables, options, catalogs_of)

    def filter(self, options: Options) -> RecordFilter:
        """Return the records a module's options ask for."""
        since = None
        if options.lookback_days:
            today = self.clock().astimezone(dt.timezone.utc).date()
            since = today - dt.timedelta(days=options.lookback_days)
        return RecordFilter(options.min_severity, since)

    def _each(
        self, ctx: Context, observables: Sequence[Observable],
        options: Options, mapper: Mapper[T],
    ) -> tuple[list[T | None], list[RelayError]]:
        """Look every observable up in a greenlet of its own; return what
        *mapper* made of each, in the order sent (None where it could not
        be read), and the errors met."""
        # Each observable's share of the answer: the newest records first.
        limit = min(options.entities_limit,
                    max(1, self.answer_cap // max(1, len(observables))))
        only = self.filter(options)
        turns = Turns(self.fanout)
        # Each observable's slot of the key's cap, kept from its records
        # to its catalogs' call, is given back here at the latest (an
        # observable stopped by the budget, a hand-over never dispatched).
        held = [Kept() for _ in observables]
        try:
            with Tasks() as tasks:
                loader = CatalogLoader(self.spycloud, self.catalog_cache, ctx,
                                       tasks, turns)
                running = [tasks.spawn(self._one, ctx, loader, turns,
                                       observable, kept, limit, only, mapper)
                           for observable, kept in zip(observables, held)]
                finished = tasks.join(ctx.remaining() + GRACE)
        finally:
            for kept in held:
                kept.give_back()
        results: list[T | None] = []
        errors: list[RelayError] = []
        left_out = 0
        for observable, task in zip(observables, running):
            found = task.result() if task.done() else None
            if not isinstance(found, Found):
                results.append(None)
                if found is not None:
                    errors.append(found)
                continue
            errors.extend(_notes(observable, found.records))
            left_out += min(found.records.matched, options.entities_limit) \
                - len(found.records.records)
            results.append(found.mapped)
        if left_out:
            errors.append(warning(
                "too many results",
                f"One answer holds at most {self.answer_cap:,} sightings:"
                f" each observable kept its newest {limit:,}, and"
                f" {left_out:,} older sighting(s) were left out.",
            ))
        errors.extend(loader.errors)
        if not finished or loader.late:  # the budget ran out with calls open
            errors.append(out_of_time(ctx.budget))
        errors.extend(
            warning("not found", f"SpyCloud did not return results for {i}")
            for i in loader.missing)
        return results, errors

    def _one(
        self, ctx: Context, loader: CatalogLoader,
        turns: Turns, observable: Observable, kept: Kept,
        limit: int, only: RecordFilter, mapper: Mapper[T],
    ) -> Found[T] | RelayError:
        """Look one observable up: its records (from the records cache, or
        from SpyCloud once one of the request's turns is free), their
        catalogs, then what *mapper* makes of them."""
        key = (ctx.digest, observable.type, observable.query, limit, only)
        found = self.records_cache.get(key)
        handed = None
        if found is None:
            if not turns.take(ctx.remaining()):
                return out_of_time(ctx.budget)
            try:
                found = self.spycloud.records(ctx, observable.type,
                                              observable.query, limit, only,
                                              kept)
            except RelayError as error:
                kept.give_back()
                turns.give()
                return error
            except Exception:  # a bug must not lose the other observables
                kept.give_back()
                turns.give()
                log.exception("unexpected failure while reading SpyCloud",
                              extra={"fields": {
                                  "request_id": ctx.request_id}})
                return RelayError("An unexpected error occurred.")
            handed = kept
            self.records_cache.put(key, found)
        # The turn and the kept slot go to this observable's catalogs, if
        # it asks new ones.
        catalogs = loader.load((r.source_id for r in found.records), handed)
        try:
            return Found(found, mapper(observable, found, catalogs))
        except Exception:  # a bug must not lose the other observables
            log.exception("unexpected failure while mapping an observable",
                          extra={"fields": {"request_id": ctx.request_id}})
            return RelayError(UNEXPECTED.format(value=observable.value))


def _notes(observable: Observable, found: Records) -> list[RelayError]:
    """The analyst-facing warnings of one observable's records."""
    notes = []
    if found.rejected:
        notes.append(warning(
            "invalid result",
            f"SpyCloud returned {found.rejected} unusable record(s) for"
            f" {observable.value}; they are left out.",
        ))
    if found.capped and found.hits is not None and found.hits > found.read:
        notes.append(warning(
            "too many results",
            f"SpyCloud holds {found.hits:,} records for {observable.value};"
            f" the relay reads at most {found.pages} pages, and this answer"
            f" covers the newest {found.read:,} of them.",
        ))
    elif found.capped:
        notes.append(warning(
            "too many results",
            f"SpyCloud holds more records for {observable.value} than the"
            f" relay reads ({found.pages} pages); older records were not"
            " read.",
        ))
    return notes
