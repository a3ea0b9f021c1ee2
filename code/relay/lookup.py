"""One observe request: query SpyCloud for its emails, map the answers.

Emails are queried concurrently (the client's bounded pool), then the
catalogs of all their surviving records in one batched round, so a request
costs the round trips of its slowest email plus one. Nothing here touches
Flask: the client, key, limit and budget arrive as arguments, so the
client's threads need no app context.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import ctim
from .budget import Budget
from .envelope import Bundle
from .errors import RelayError, warning
from .records import Record
from .spycloud import SpyCloudClient


def observe(
    client: SpyCloudClient,
    key: str,
    emails: Sequence[str],
    limit: int,
    budget: Budget,
) -> tuple[Bundle, list[RelayError]]:
    """Return the CTIM entities of *emails*, in order, and the errors met."""
    errors: list[RelayError] = []
    found: dict[str, list[Record]] = {}
    for email, answer in zip(emails, client.breaches_many(key, emails, budget)):
        if isinstance(answer, RelayError):
            errors.append(answer)
            continue
        errors.extend(answer.warnings)
        found[email] = ctim.newest(answer.records, limit)

    ids = [r.source_id for records in found.values() for r in records]
    catalogs = client.catalogs(key, ids, budget)
    errors.extend(catalogs.errors)
    errors.extend(
        warning("not found", f"SpyCloud did not return results for {i}")
        for i in catalogs.missing
    )
    bundle = Bundle()
    for email, records in found.items():
        bundle.add(ctim.observe(email, records, catalogs.found))
    return bundle, errors
