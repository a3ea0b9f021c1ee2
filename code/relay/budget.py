"""A request's time budget: the seconds it may spend, from its arrival."""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import SpyCloudError

# Every call ends by the budget (its I/O is interrupted when it runs out);
# who waits for a call gives it this much longer, so a call that ends
# right at the deadline reports its own error.
GRACE = 0.1
OUT_OF_TIME = (
    "The relay's time budget of {seconds:g} s ran out before SpyCloud answered."
)


class Budget:
    """Seconds left for one relay request, shared by all its greenlets."""

    def __init__(
        self, seconds: float, clock: Callable[[], float] = time.monotonic,
        started: float | None = None,
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        # From *started* (the request's arrival, on *clock*) if given: the
        # time its body took to arrive is spent already.
        self._deadline = (clock() if started is None else started) + seconds

    def remaining(self) -> float:
        """Return the seconds left, never below zero."""
        return max(0.0, self._deadline - self._clock())


def out_of_time(budget: Budget) -> SpyCloudError:
    """Return the error of a request whose budget ran out."""
    return SpyCloudError(OUT_OF_TIME.format(seconds=budget.seconds),
                         kind="out_of_time")
