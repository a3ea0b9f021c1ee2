"""What an operator sees: start-up refusals, log lines, metrics; the relay
under gunicorn against the emulator."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
import requests

from devtools.stack import CODE, Stack, free_port

from .helpers import observables, post, wait_until

pytestmark = pytest.mark.e2e

KEY = "ops-Key-31b7c0-not-for-logs"


@pytest.mark.parametrize(("name", "value"), [
    ("ALLOWED_JWKS_HOSTS", ""),
    ("ALLOWED_JWKS_HOSTS", " , "),
    ("TRUST_PROXY_HEADERS", "maybe"),
    ("SPYCLOUD_API_URL", "notaurl"),
    ("SPYCLOUD_PORTAL_URL", "ftp://portal.example"),
    ("RELAY_REQUEST_BUDGET", "abc"),
    ("WEB_CONCURRENCY", "two"),
    ("WORKER_CONNECTIONS", "lots"),
    ("LOG_LEVEL", "verbose"),
    ("LOG_FORMAT", "xml"),
    ("BIND", "9090"),
    ("METRICS_BIND", "localhost"),
    ("JWKS_URL_TEMPLATE", "https://fixed.example/jwks"),
    ("RECORDS_CACHE_TTL", "-1"),
    ("METRICS_BIND", "127.0.0.1:{port}"),  # BIND's own port
    ("REDIS_URL", "redis+sentinel://:hunter2@10.0.0.1:26379"),
    ("ALLOWED_JWKS_HOSTS", "https://visibility.amp.cisco.com"),
])
def test_bad_setting_stops_the_master(name, value) -> None:
    port = free_port()
    value = value.format(port=port)
    env = {"PATH": "/usr/bin:/bin", "BIND": f"127.0.0.1:{port}",
           name: value}
    done = subprocess.run(  # noqa: S603 (fixed argv)
        [sys.executable, "serve.py"], cwd=CODE, env=env,
        capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = (done.stdout + done.stderr).strip().splitlines()
    shown = value.replace("hunter2", "***")  # a password never
    assert lines == [f"relay: cannot start: {name}={shown!r} cannot be used:"
                     f" expected {lines[0].split(' expected ', 1)[1]}"]
    assert "Traceback" not in done.stderr and "hunter2" not in lines[0]


def test_a_busy_port_is_refused_in_one_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(  # noqa: S603 (fixed argv)
            [sys.executable, "serve.py"], cwd=CODE, timeout=60,
            env={"PATH": "/usr/bin:/bin", "BIND": f"127.0.0.1:{port}"},
            capture_output=True, text=True)
    assert done.returncode == 2
    assert (done.stdout + done.stderr).strip().splitlines() == [
        f"relay: cannot start: BIND='127.0.0.1:{port}' cannot be used:"
        " another program listens there"]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """The relay with two workers, JSON logs and a metrics listener."""
    log_path = tmp_path_factory.mktemp("ops") / "relay.log"
    metrics = f"127.0.0.1:{free_port()}"
    env = {"WEB_CONCURRENCY": "2", "LOG_FORMAT": "json",
           "METRICS_BIND": metrics, "SPYCLOUD_RETRY_WAIT": "0.01",
           "SPYCLOUD_RETRY_WAIT_MAX": "0.05",
           "ALLOWED_JWKS_HOST": "visibility.amp.cisco.com"}  # misspelt
    with log_path.open("w") as log, Stack(api_key=KEY, env=env,
                                          log=log) as stack:
        stack.log_path = log_path
        stack.metrics_url = f"http://{metrics}/metrics"
        yield stack


def lines(stack) -> list[dict]:
    return [json.loads(line) for line in
            stack.log_path.read_text().splitlines() if line.strip()]


def observe(stack, *emails: str, request_id: str | None = None):
    return post(stack, "/observe/observables", observables("email", emails),
                headers={"X-Request-Id": request_id} if request_id else {})


def test_log_lines_are_json_with_the_start_line_once(two_workers) -> None:
    observe(two_workers, "jane.doe@demo.test")
    logged = lines(two_workers)  # every line parses, gunicorn's too
    starts = [line for line in logged if line["message"].startswith(
        "relay ") and line["message"].endswith(" starting")]
    assert len(starts) == 1
    assert starts[0]["RELAY_REQUEST_BUDGET"] == "25"
    assert starts[0]["WEB_CONCURRENCY"] == "2"
    assert starts[0]["audience"] == (
        "each request's own URL (Host header): pin JWT_AUDIENCE to the URL"
        " registered in XDR in production")
    assert any(line["logger"] == "gunicorn.error" for line in logged)
    assert KEY not in two_workers.log_path.read_text()
    # A misspelt variable is named once, at start-up, with what it meant.
    assert [line["message"] for line in logged
            if line["message"].startswith("ALLOWED_JWKS_HOST ")] == [
        "ALLOWED_JWKS_HOST is not a setting of the relay (did you mean"
        " ALLOWED_JWKS_HOSTS?); it is ignored"]


def test_a_final_spycloud_failure_is_one_warning(two_workers) -> None:
    answer = observe(two_workers, "fault-500@demo.test",
                     request_id="case-500")
    assert answer.headers["X-Request-Id"] == "case-500"
    mine = [line for line in lines(two_workers)
            if line.get("request_id") == "case-500"]
    warnings = [line for line in mine if line["level"] == "WARNING"]
    assert warnings == [{
        "time": warnings[0]["time"], "level": "WARNING",
        "logger": "relay.transport", "message": "SpyCloud call failed",
        "kind": "server_error", "status": 500,
        "endpoint": "breach/data/emails", "attempts": 3,
        "request_id": "case-500"}]
    retries = [line for line in mine if line["message"] ==
               "SpyCloud call retried"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert {r["level"] for r in retries} == {"INFO"}
    access = [line for line in mine if line["logger"] == "relay"]
    assert access[-1]["outcome"] == "fatal:internal error"
    assert access[-1]["spycloud_calls"] == 3
    assert "fault-500" not in json.dumps(mine)  # never the observable


def test_a_request_id_is_made_when_none_is_sent(two_workers) -> None:
    answer = observe(two_workers, "nobody@demo.test",
                     request_id="not a token!")
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-Id"])


def test_refused_token_is_logged_with_its_reason(two_workers) -> None:
    answer = requests.post(two_workers.url + "/health", timeout=10,
                           headers={"Authorization": "Basic abc",
                                    "X-Request-Id": "case-auth"})
    assert answer.json()["errors"][0]["code"] == "authorization error"
    mine = [line for line in lines(two_workers)
            if line.get("request_id") == "case-auth"]
    assert [(m["level"], m["message"], m.get("reason")) for m in mine][0] \
        == ("INFO", "authorization failed", "wrong_type")


def scrape(stack) -> dict[tuple[str, frozenset], float]:
    """Return the metrics as {(name, labels): value}."""
    text = requests.get(stack.metrics_url, timeout=10).text
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? ([0-9.e+-]+)", line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"',
                                          match.group(2) or ""))
            found[match.group(1), labels] = float(match.group(3))
    return found


def total(metrics: dict, name: str, **labels: str) -> float:
    return sum(value for (metric, found), value in metrics.items()
               if metric == name and set(labels.items()) <= found)


def test_metrics_agree_with_the_emulator(two_workers) -> None:
    before = scrape(two_workers)
    calls_before = two_workers.emulator.calls.copy()
    emails = [f"n5.b3.s{800 + n}@bench.test" for n in range(12)]
    for email in emails:  # spread over both workers
        observe(two_workers, email)
    observe(two_workers, "once-502@demo.test")
    after = scrape(two_workers)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    made = two_workers.emulator.calls["total"] - calls_before["total"]
    ok = delta("relay_spycloud_calls_total", outcome="ok")
    retried = delta("relay_spycloud_calls_total", outcome="retried")
    assert ok + retried == made
    assert retried == 1
    assert delta("relay_requests_total", route="/observe/observables",
                 outcome="ok") == 13
    assert delta("relay_request_duration_seconds_count",
                 route="/observe/observables") == 13
    assert delta("relay_cache_lookups_total", cache="records",
                 result="miss") == 13
    pids = {line.get("pid") for line in lines(two_workers)}
    assert pids  # the log was read: the scrape is of a running relay
    port = two_workers.url.rsplit(":", 1)[1]
    assert requests.get(f"http://127.0.0.1:{port}/metrics",
                        timeout=5).status_code == 404  # never on the XDR port


# --- the process's life under an orchestrator --------------------------------

def test_sigterm_lets_the_answers_in_flight_finish_and_exits_0(
        tmp_path) -> None:
    import signal
    from concurrent.futures import ThreadPoolExecutor

    with (tmp_path / "relay.log").open("w") as log:
        stack = Stack(log=log, env={"RECORDS_CACHE_TTL": "0"}).start()
        try:
            with ThreadPoolExecutor(10) as pool:  # ten 2-second answers
                answers = [pool.submit(observe, stack, "fault-slow@demo.test")
                           for _ in range(10)]
                wait_until(lambda: stack.emulator.in_flight and sum(
                    stack.emulator.in_flight.values()) == 10)
                stack.process.send_signal(signal.SIGTERM)
                bodies = [a.result() for a in answers]
            assert all(b.status_code == 200 and "errors" not in b.json()
                       for b in bodies)
            assert stack.process.wait(30) == 0
        finally:
            stack.stop()


def test_sighup_reloads_the_workers_without_dropping_a_request(
        tmp_path) -> None:
    import signal
    import threading

    with (tmp_path / "relay.log").open("w") as log, Stack(
            log=log) as stack:
        before = stack.worker_pids()
        failures: list[object] = []
        stop = threading.Event()

        def load() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    answer = observe(stack, "jane.doe@demo.test")
                    if answer.status_code != 200 or "errors" in answer.json():
                        failures.append(answer.text)
                except requests.RequestException as error:
                    failures.append(error)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.5)
            stack.process.send_signal(signal.SIGHUP)
            wait_until(lambda: stack.worker_pids() and set(
                stack.worker_pids()).isdisjoint(before), timeout=20)
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert failures == []
