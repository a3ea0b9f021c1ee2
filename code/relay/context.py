"""One request as everything below the routes sees it: one value."""

from __future__ import annotations

from dataclasses import dataclass, field

from .budget import Budget
from .digest import key_digest


class Calls:
    """How many calls a request made to SpyCloud (greenlets switch only
    where they wait, so counting needs no lock)."""

    def __init__(self) -> None:
        self.count = 0

    def add(self) -> None:
        self.count += 1


@dataclass(frozen=True)
class Context:
    """Whose request it is, by when it must answer, and what it spent.

    Built once by the route once the token is verified; the key's digest
    (what caches, limits and Redis name the customer by) is worked out
    here, once.
    """

    key: str = field(repr=False)  # never in a log line or a traceback
    budget: Budget
    request_id: str = "-"
    calls: Calls = field(default_factory=Calls)
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", key_digest(self.key))

    def remaining(self) -> float:
        """Return the seconds the request has left."""
        return self.budget.remaining()
