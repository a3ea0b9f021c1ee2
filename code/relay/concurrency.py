"""What the relay needs of gevent, named: a deadline scope.

A request's greenlet and the greenlets it starts block only on cooperative
sockets and gevent's primitives, so a deadline can interrupt any of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import gevent


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
