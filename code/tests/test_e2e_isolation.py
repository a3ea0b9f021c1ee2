"""Nobody starves the relay: slow clients, one customer's hanging or
trickling requests and large unauthenticated bodies cost the others
nothing (docs/contract.md, "Limits on the open network").

The relay runs under gunicorn with its shipped concurrency settings and a
1.5 s budget, against the emulator, for two customers (A and B).
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import requests
from gevent.event import Event

from .conftest import E2E_ENV, E2E_KEY
from .helpers import wait_until

pytestmark = pytest.mark.e2e

BUDGET = 1.5  # RELAY_REQUEST_BUDGET of this stack
CAP = 20  # SPYCLOUD_MAX_CONCURRENCY, as shipped
KEY_B = "e2e-Key-customer-b-7d41"
TIMED_OUT = {"type": "fatal", "code": "unknown",
             "message": "SpyCloud did not answer in time."}
OUT_OF_TIME = ("The relay's time budget of 1.5 s ran out before SpyCloud"
               " answered.")


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One relay for two customers; every observe asks SpyCloud afresh."""
    from devtools.stack import Stack

    log_path = tmp_path_factory.mktemp("isolation") / "relay.log"
    with log_path.open("w") as log, Stack(
        api_key=E2E_KEY, more_keys=[KEY_B], log=log, env={
            **E2E_ENV, "RELAY_REQUEST_BUDGET": str(BUDGET),
            "SPYCLOUD_READ_TIMEOUT": "1", "SPYCLOUD_CONNECT_TIMEOUT": "0.5",
            "RECORDS_CACHE_TTL": "0"},
    ) as running:
        running.log_path = log_path
        running.tokens, running.emails = [], set()
        running.token_a = running.token()
        running.token_b = running.token(key=KEY_B)
        running.tokens += [running.token_a, running.token_b]
        yield running


@pytest.fixture(autouse=True)
def clean_isolation_log(relay) -> Iterator[None]:
    from .conftest import assert_log_clean

    yield
    assert_log_clean(relay)


def observe(relay: Any, token: str, *values: str,
            timeout: float = 30) -> tuple[dict, float]:
    relay.emails.update(values)
    started = time.monotonic()
    answer = requests.post(
        relay.url + "/observe/observables", timeout=timeout,
        json=[{"type": "email", "value": v} for v in values],
        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    return answer.json(), time.monotonic() - started


def customer_b(relay: Any) -> float:
    """Time customer B's one-email observe (jane: 6 sightings)."""
    body, elapsed = observe(relay, relay.token_b, "jane.doe@demo.test")
    assert body["data"]["sightings"]["count"] == 6
    return elapsed


def test_slow_clients_cost_the_others_nothing(relay) -> None:
    host, port = relay.url.removeprefix("http://").split(":")
    slow = [socket.create_connection((host, int(port))) for _ in range(200)]
    for sock in slow:
        sock.sendall(b"POST /observe/observables HTTP/1.1\r\nX-Slow: ")
    stop = Event()

    def trickle() -> None:  # one more header byte per connection a second
        while not stop.wait(1):
            for sock in slow:
                sock.send(b"s")

    dripping = gevent.spawn(trickle)
    try:
        started = time.monotonic()
        assert requests.post(relay.url + "/version", timeout=5).ok
        assert time.monotonic() - started < 1
        assert customer_b(relay) < 1
    finally:
        stop.set()
        dripping.kill()
        for sock in slow:
            sock.close()


def test_one_customers_hanging_requests_cost_another_nothing(relay) -> None:
    alone = statistics.median(customer_b(relay) for _ in range(5))
    hanging = [gevent.spawn(observe, relay, relay.token_a,
                            "fault-hang@demo.test") for _ in range(100)]
    # The cap of A's requests hang at SpyCloud, the others wait for a slot.
    wait_until(lambda: sum(relay.emulator.in_flight.values()) == CAP)
    during = statistics.median(customer_b(relay) for _ in range(5))
    health = requests.post(relay.url + "/health", timeout=5, headers={
        "Authorization": f"Bearer {relay.token_b}"})
    assert not any(h.ready() for h in hanging)  # B was measured under load
    answers = [h.get() for h in hanging]
    assert during <= 1.5 * alone + 0.02, (alone, during)
    assert health.json() == {"data": {"status": "ok"}}
    # At most the per-key cap waited on SpyCloud at once, the others for a
    # slot; every one of them answered by the budget.
    waits = {body["errors"][0]["message"] for body, _ in answers}
    assert waits == {TIMED_OUT["message"], OUT_OF_TIME}
    assert max(elapsed for _, elapsed in answers) < BUDGET + 0.5


def test_a_trickled_answer_ends_by_the_budget_and_is_stopped(relay) -> None:
    relay.emulator.reset()
    trickled = [gevent.spawn(observe, relay, relay.token_a,
                             "fault-trickle@demo.test", "jane.doe@demo.test")
                for _ in range(3)]
    # Three bodies trickle in.
    wait_until(lambda: relay.emulator.calls["fault trickle"] == 3)
    assert customer_b(relay) < 1
    for each in trickled:
        body, elapsed = each.get()
        assert elapsed < BUDGET + 0.5
        assert body["errors"] == [TIMED_OUT]
        assert {k: v["count"] for k, v in body["data"].items()} == {
            "sightings": 6, "indicators": 4, "relationships": 6}
    assert relay.emulator.stats()["calls"]["fault trickle"] == 3
    # Once answered, the relay hangs up: the emulator stops writing.
    deadline = time.monotonic() + 3
    while any(relay.emulator.in_flight.values()) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(relay.emulator.in_flight.values())


def worker_memory(relay: Any) -> dict[str, int]:
    """Return the worker's resident and peak memory, in kB."""
    (pid,) = relay.worker_pids()
    status = Path(f"/proc/{pid}/status").read_text()
    return {line.split(":")[0]: int(line.split()[1])
            for line in status.splitlines()
            if line.startswith(("VmRSS", "VmHWM"))}


@pytest.mark.parametrize("item", [b"{}", b'{"type":"email","value":"x"}'])
def test_an_unauthenticated_megabyte_costs_little(relay, item) -> None:
    count = 1_000_000 // (len(item) + 1)
    body = b"[" + b",".join([item] * count) + b"]"
    before = worker_memory(relay)
    answers = [gevent.spawn(requests.post, relay.url + "/observe/observables",
                            data=body, timeout=30,
                            headers={"Content-Type": "application/json"})
               for _ in range(8)]
    sizes = {len(a.get().content) for a in answers}
    after = worker_memory(relay)
    assert max(sizes) <= 64 * 1024, sizes
    # Each body is parsed once, one at a time: no per-item error objects.
    assert after["VmHWM"] - before["VmRSS"] < 64 * 1024, (before, after)
    assert answers[0].get().json()["errors"][-1]["message"].endswith(
        f"{count - 5:,} more invalid observables not shown.)" if item == b"{}"
        else f"{count - 5:,} more observables were not valid for their type;"
        " they were not looked up.")
