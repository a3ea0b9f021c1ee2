"""A request body must arrive in time and whole (docs/contract.md, "Limits
on the open network"): stalled, endless, broken and aborted bodies, against
the relay under gunicorn with its shipped connection settings."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from .conftest import E2E_ENV, E2E_KEY

pytestmark = pytest.mark.e2e

BODY_TIMEOUT = 1.0  # this stack's BODY_TIMEOUT; its budget is longer
HEADERS = (b"POST /observe/observables HTTP/1.1\r\nHost: relay\r\n"
           b"Content-Type: application/json\r\n")


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from devtools.stack import Stack

    log_path = tmp_path_factory.mktemp("bodies") / "relay.log"
    with log_path.open("w") as log, Stack(
        api_key=E2E_KEY, log=log,
        env={**E2E_ENV, "BODY_TIMEOUT": str(BODY_TIMEOUT)},
    ) as running:
        running.log_path = log_path
        running.tokens, running.emails = [], {"jane.doe@demo.test"}
        yield running


@pytest.fixture(autouse=True)
def clean_bodies_log(relay) -> Iterator[None]:
    from .conftest import assert_log_clean

    yield
    assert_log_clean(relay)


def connect(relay: Any) -> socket.socket:
    host, port = relay.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def answer_of(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP answer (status, headers, body) and the connection's
    end: the relay closes it after a body it did not read whole."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


def jane(relay: Any) -> float:
    started = time.monotonic()
    token = relay.token()
    relay.tokens.append(token)
    answer = requests.post(
        relay.url + "/observe/observables", timeout=10,
        json=[{"type": "email", "value": "jane.doe@demo.test"}],
        headers={"Authorization": f"Bearer {token}"})
    assert answer.json()["data"]["sightings"]["count"] == 6
    return time.monotonic() - started


def test_stalled_bodies_lock_no_one_out_and_get_408(relay) -> None:
    # More stalled connections than a worker held in all before (1,000).
    stalled = []
    for _ in range(1200):
        sock = connect(relay)
        sock.sendall(HEADERS + b"Content-Length: 100\r\n\r\n[")
        stalled.append(sock)
    try:
        assert jane(relay) < 2
        started = time.monotonic()
        status, headers, body = answer_of(stalled[-1])
        assert status == 408
        assert time.monotonic() - started < BODY_TIMEOUT + 1
        assert body.startswith(b'{"code":408')
        assert headers["X-Request-Id"]
        assert {answer_of(sock)[0] for sock in stalled[:50]} == {408}
    finally:
        for sock in stalled:
            sock.close()
    assert "request body too slow" in relay.log_path.read_text()


def test_an_endless_chunked_body_gets_408(relay) -> None:
    with connect(relay) as sock:
        sock.sendall(HEADERS + b"Transfer-Encoding: chunked\r\n\r\n1\r\n[\r\n")
        started = time.monotonic()
        status, _, _ = answer_of(sock)
    assert status == 408
    assert time.monotonic() - started < BODY_TIMEOUT + 1


def test_a_bad_chunk_size_is_a_400_with_a_request_id(relay) -> None:
    with connect(relay) as sock:
        sock.sendall(HEADERS + b"Transfer-Encoding: chunked\r\n"
                     b"X-Request-Id: bad-chunk-1\r\n\r\nzz\r\n[]\r\n0\r\n\r\n")
        status, headers, body = answer_of(sock)
    assert status == 400
    assert headers["X-Request-Id"] == "bad-chunk-1"
    assert b"could not be read" in body
    lines = [line for line in relay.log_path.read_text().splitlines()
             if "bad-chunk-1" in line]
    assert len(lines) == 2, lines  # the reason, and the access line
    assert "request body unreadable" in lines[0]
    assert " 400 " in lines[1] and "duration=-" not in lines[1]


def test_an_aborted_chunked_body_is_a_400(relay) -> None:
    with connect(relay) as sock:
        sock.sendall(HEADERS + b"Transfer-Encoding: chunked\r\n\r\n"
                     b"10\r\n[{\"type\":")
        sock.shutdown(socket.SHUT_WR)  # the client hangs up mid-body
        status, headers, _ = answer_of(sock)
    assert status == 400
    (line,) = [line for line in relay.log_path.read_text().splitlines()
               if headers["X-Request-Id"] in line and "unreadable" in line]
    assert " INFO " in line and "error=NoMoreData" in line


def test_a_body_cut_short_is_a_400(relay) -> None:
    with connect(relay) as sock:
        sock.sendall(HEADERS + b"Content-Length: 100\r\n\r\n[{}")
        sock.shutdown(socket.SHUT_WR)
        status, _, _ = answer_of(sock)
    assert status == 400
