"""One observe request: query SpyCloud for its emails, map the answers.

Emails are queried concurrently (a bounded pool), then the catalogs of all
their surviving records in one batched round, so a request costs the round
trips of its slowest email plus one. Nothing here touches Flask: the client,
key, limit and budget arrive as arguments, so worker threads need no app
context.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from . import ctim
from .budget import Budget
from .envelope import Bundle
from .errors import RelayError, warning
from .records import Record
from .spycloud import Breaches, SpyCloudClient

log = logging.getLogger(__name__)


def observe(
    client: SpyCloudClient,
    key: str,
    emails: Sequence[str],
    limit: int,
    budget: Budget,
    workers: int,
) -> tuple[Bundle, list[RelayError]]:
    """Return the CTIM entities of *emails*, in order, and the errors met."""
    errors: list[RelayError] = []
    found: dict[str, list[Record]] = {}
    if emails:
        with ThreadPoolExecutor(min(workers, len(emails)), "emails") as pool:
            answers = list(pool.map(
                lambda email: _breaches(client, key, email, budget), emails
            ))
        for email, answer in zip(emails, answers):
            if isinstance(answer, RelayError):
                errors.append(answer)
                continue
            errors.extend(answer.warnings)
            found[email] = ctim.newest(answer.records, limit)

    ids = [r.source_id for records in found.values() for r in records]
    catalogs = client.catalogs(key, ids, budget) if ids else None
    bundle = Bundle()
    if catalogs is not None:
        errors.extend(catalogs.errors)
        errors.extend(
            warning("not found", f"SpyCloud did not return results for {i}")
            for i in catalogs.missing
        )
    for email, records in found.items():
        bundle.add(ctim.observe(
            email, records, catalogs.found if catalogs else {}
        ))
    return bundle, errors


def _breaches(
    client: SpyCloudClient, key: str, email: str, budget: Budget
) -> Breaches | RelayError:
    try:
        return client.breaches(key, email, budget)
    except RelayError as error:
        return error
    except Exception:  # a bug must not lose the other emails' answers
        log.exception("unexpected failure while reading breaches")
        return RelayError("An unexpected error occurred.")
