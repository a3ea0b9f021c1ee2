"""A request's turns (relay/concurrency.py): a bound, urgent takers first,
and no wait without an end."""

from __future__ import annotations

import gevent

from relay.concurrency import Turns


def test_no_more_than_the_turns_at_once() -> None:
    turns = Turns(2)
    assert turns.take(0) and turns.take(0)
    assert not turns.take(0.01)
    turns.give()
    assert turns.take(0)


def test_an_urgent_taker_goes_before_the_waiting_ones() -> None:
    turns = Turns(1)
    assert turns.take(0)
    order: list[str] = []

    def take(name: str, urgent: bool) -> None:
        assert turns.take(5, urgent=urgent)
        order.append(name)
        turns.give()

    waiting = [gevent.spawn(take, "first ordinary", False),
               gevent.spawn(take, "second ordinary", False)]
    gevent.sleep(0)  # both wait now
    waiting.append(gevent.spawn(take, "urgent", True))
    gevent.sleep(0)
    turns.give()
    gevent.joinall(waiting, timeout=5)
    assert order == ["urgent", "first ordinary", "second ordinary"]


def test_a_stopped_waiter_holds_no_turn() -> None:
    turns = Turns(1)
    assert turns.take(0)
    waiter = gevent.spawn(turns.take, 5)
    gevent.sleep(0)
    waiter.kill()
    turns.give()
    assert turns.take(0)  # the turn came back, not to the stopped waiter
