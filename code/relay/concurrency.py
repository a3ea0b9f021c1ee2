"""What the relay needs of gevent, named in one place.

The relay runs on gunicorn's gevent worker with the standard library
patched (`serve.py`): `threading`'s locks and semaphores, `time.sleep` and
sockets are cooperative, so a greenlet that waits lets the others run.
What the patched library does not say is here: a deadline that interrupts
whatever a greenlet waits on, the greenlets of one request, a result other
greenlets wait for, backoff between tries, and the operating system's own
`poll`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, cast

import gevent
from gevent import monkey
from gevent.event import AsyncResult, Event
from gevent.pool import Group

T = TypeVar("T")
STOP_WAIT = 1.0  # seconds for stopped greenlets to run their `finally`
# The operating system's poll, whether or not gevent has patched `select`.
os_poll = monkey.get_original("select", "poll")


class Expired(Exception):
    """A deadline scope's time ran out (not any other timeout: a socket's
    own is the caller's to tell apart)."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Run the body for at most *seconds*; raise `Expired` when they run
    out (whatever it was waiting on is interrupted). A timeout of an outer
    scope passes through untouched."""
    timeout = gevent.Timeout(max(seconds, 0.001))
    timeout.start()
    try:
        yield
    except gevent.Timeout as fired:
        if fired is not timeout:
            raise
        raise Expired from None
    finally:
        timeout.close()


class Task(Generic[T]):
    """One function running in its own greenlet."""

    def __init__(self, greenlet: gevent.Greenlet[..., T]) -> None:
        self._greenlet = greenlet

    def done(self) -> bool:
        """Say whether it returned or raised."""
        return bool(self._greenlet.ready())

    def result(self) -> T:
        """Return what it returned, or raise what it raised (it is done)."""
        value: T = self._greenlet.get(block=False)
        return value


class Tasks:
    """The greenlets one request starts: none outlives it.

    `close` (or leaving the `with` block) stops those still running; each
    runs its `finally` (giving back a key's slot) as it stops.
    """

    def __init__(self) -> None:
        self._group = Group()

    def spawn(self, function: Callable[..., T], *args: Any) -> Task[T]:
        """Run `function(*args)` in a greenlet of this request."""
        return Task(self._group.spawn(function, *args))

    def join(self, timeout: float) -> bool:
        """Wait at most *timeout* seconds for every task; say whether all
        are done."""
        return bool(self._group.join(timeout=max(timeout, 0.0)))

    def close(self) -> None:
        """Stop whatever still runs."""
        self._group.kill(timeout=STOP_WAIT)

    def __enter__(self) -> Tasks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Future(Generic[T]):
    """A value one greenlet sets and others wait for, by their deadline."""

    def __init__(self) -> None:
        self._result: AsyncResult[T] = AsyncResult()

    def set(self, value: T) -> None:
        self._result.set(value)

    def wait(self, timeout: float) -> bool:
        """Wait at most *timeout* seconds; say whether the value is set."""
        self._result.wait(max(timeout, 0.0))
        return bool(self._result.ready())

    def value(self) -> T:
        """Return the value (it is set)."""
        return cast(T, self._result.get(block=False))


class Turns:
    """At most *size* holders at once among the greenlets of one request;
    an urgent taker (work that others wait on) goes before every ordinary
    one already waiting. Every wait ends by its timeout."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._urgent: deque[Event] = deque()
        self._ordinary: deque[Event] = deque()

    def take(self, timeout: float, urgent: bool = False) -> bool:
        """Take a turn, waiting at most *timeout* seconds; say whether one
        was taken (then `give` it back)."""
        if self._free and not (self._urgent or self._ordinary):
            self._free -= 1
            return True
        turn = Event()
        queue = self._urgent if urgent else self._ordinary
        queue.append(turn)
        try:
            turn.wait(max(timeout, 0.0))
        except BaseException:  # stopped while waiting: hold nothing
            if turn.is_set():
                self.give()
            else:
                queue.remove(turn)
            raise
        if not turn.is_set():  # timed out
            queue.remove(turn)
            return False
        return True

    def give(self) -> None:
        """Give a turn back: to the first urgent waiter, else the first
        ordinary one, else to the free ones."""
        waiting = self._urgent or self._ordinary
        if waiting:
            waiting.popleft().set()  # the turn passes on, still taken
        else:
            self._free += 1


def retries(timeout: float, first: float = 0.005,
            longest: float = 0.05) -> Iterator[None]:
    """Pace the tries of a wait that polls: yield at once, then after
    waits that double from *first* up to *longest*, until *timeout*
    seconds are over (the last wait ends at the deadline)."""
    end = time.monotonic() + timeout
    wait = first
    yield
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(wait, left))
        wait = min(wait * 2, longest)
        yield
