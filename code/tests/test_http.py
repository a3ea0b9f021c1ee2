"""The HTTP client of every call out (relay/http.py): pooled connections
reused at once, never when dead; the caps of a call.

The server here runs on real threads (gevent's originals), so it notes when
each request arrives while the relay's greenlets are busy."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import gevent
import pytest

from relay import http

from .helpers import ThreadedServer

BODY = b'{"results": []}'
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % len(BODY)) + BODY


class Server(ThreadedServer):
    """Answers every GET with the same JSON on keep-alive connections; with
    *hang_up*, closes each connection right after its first answer (without
    saying so, as a server whose idle timeout ran out does); with *answer*
    None, never answers, and False, closes the connection instead."""

    def __init__(self, hang_up: bool = False,
                 answer: bool | None = True) -> None:
        self.hang_up = hang_up
        self.answer = answer
        self.arrivals: list[float] = []
        self.closed = 0  # connections this server has closed
        super().__init__()
        self.url = self.origin + "/"

    def serve(self, conn: socket.socket) -> None:
        pending = b""
        try:
            while data := conn.recv(65536):
                pending += data
                while b"\r\n\r\n" in pending:
                    _, _, pending = pending.partition(b"\r\n\r\n")
                    self.arrivals.append(time.perf_counter())
                    if self.answer is None:
                        continue
                    if self.answer is False:
                        return
                    conn.sendall(ANSWER)
                    if self.hang_up:
                        return
        finally:
            conn.close()
            self.closed += 1


@pytest.fixture
def server() -> Iterator[Server]:
    each = Server()
    yield each
    each.close()


def get(client: http.Client, url: str, within: float = 5,
        max_bytes: int = 1024) -> http.Reply:
    return client.get(url + "ping", {}, timeout=(3, 5), within=within,
                      max_bytes=max_bytes)


@pytest.mark.parametrize("through_proxy", [False, True])
def test_a_call_on_a_pooled_connection_leaves_before_others_run(
        server: Server, through_proxy: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = server.url
    if through_proxy:  # the server plays the proxy of HTTP_PROXY
        monkeypatch.setenv("HTTP_PROXY", server.url)
        for name in ("NO_PROXY", "no_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        url = "http://spycloud.invalid/enterprise-v2/"
    client = http.Client(connections=10, ca_bundle=None)
    get(client, url)  # a connection is pooled

    def busy() -> None:  # a greenlet mapping a large answer, say
        until = time.perf_counter() + 0.5
        while time.perf_counter() < until:
            pass

    gevent.spawn(busy)  # ready to run as soon as the call yields
    started = time.perf_counter()
    assert get(client, url).body == BODY
    assert len(server.arrivals) == 2
    assert server.arrivals[1] - started < 0.25  # not after the busy one


def test_a_connection_the_server_closed_is_not_reused() -> None:
    server = Server(hang_up=True)
    try:
        client = http.Client(connections=10, ca_bundle=None)
        for call in range(3):
            # A reused dead connection would fail the call (no retries).
            assert get(client, server.url).body == BODY
            until = time.perf_counter() + 5
            while server.closed <= call and time.perf_counter() < until:
                gevent.sleep(0.01)  # the pooled connection is dead now
        assert len(server.arrivals) == 3
    finally:
        server.close()


def test_an_answer_over_the_cap_is_refused(server: Server) -> None:
    client = http.Client(connections=10, ca_bundle=None)
    with pytest.raises(http.TooLarge) as refused:
        get(client, server.url, max_bytes=len(BODY) - 1)
    assert (refused.value.cap, refused.value.status) == (len(BODY) - 1, 200)
    assert get(client, server.url, max_bytes=len(BODY)).body == BODY


def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = http.Client(connections=10, ca_bundle=None)
    with pytest.raises(http.Unreachable):
        get(client, f"http://127.0.0.1:{port}/")


def test_a_server_that_never_answers_is_left_when_the_call_is_out_of_time(
        ) -> None:
    server = Server(answer=None)
    try:
        client = http.Client(connections=10, ca_bundle=None)
        started = time.perf_counter()
        with pytest.raises(http.OutOfTime):
            get(client, server.url, within=0.3)  # read timeout: 5 s
        assert time.perf_counter() - started < 1
    finally:
        server.close()


def test_a_server_that_drops_every_request_gets_it_twice_at_most() -> None:
    server = Server(answer=False)
    try:
        client = http.Client(connections=10, ca_bundle=None)
        with pytest.raises(http.Unreachable):
            get(client, server.url)
        # Once, and once more in case a pooled connection had died.
        assert len(server.arrivals) <= 2
    finally:
        server.close()


def test_a_proxy_of_another_scheme_than_http_fails_the_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    for name in ("NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    client = http.Client(connections=10, ca_bundle=None)
    with pytest.raises(http.HttpError, match="unsupported proxy scheme"):
        get(client, "https://spycloud.invalid/")
