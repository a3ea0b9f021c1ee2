"""A request's time budget, its id and its count of SpyCloud calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .errors import SpyCloudError

OUT_OF_TIME = (
    "The relay's time budget of {seconds:g} s ran out before SpyCloud answered."
)


class Budget:
    """Seconds left for one relay request, shared by all its greenlets."""

    def __init__(
        self, seconds: float, clock: Callable[[], float] = time.monotonic,
        request_id: str = "-", started: float | None = None,
    ) -> None:
        self.seconds = seconds
        self.request_id = request_id  # for log lines of the request's calls
        self._clock = clock
        # From *started* (the request's arrival, on *clock*) if given: the
        # time its body took to arrive is spent already.
        self._deadline = (clock() if started is None else started) + seconds
        self._lock = threading.Lock()
        self.calls = 0

    def remaining(self) -> float:
        """Return the seconds left, never below zero."""
        return max(0.0, self._deadline - self._clock())

    def count_call(self) -> None:
        """Record one call made to SpyCloud, from any of the request's greenlets."""
        with self._lock:
            self.calls += 1


def out_of_time(budget: Budget) -> SpyCloudError:
    """Return the error of a request whose budget ran out."""
    return SpyCloudError(OUT_OF_TIME.format(seconds=budget.seconds),
                         kind="out_of_time")
