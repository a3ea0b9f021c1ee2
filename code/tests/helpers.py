"""What many tests need: SpyCloud's list answers, and a call to a running
relay that notes its token and observables for the log scan."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests
from gevent import monkey

from relay.digest import key_digest


# A server of a test runs on real threads and sockets (gevent's originals),
# so it goes on while the relay's greenlets are busy.
_socket = monkey.get_original("socket", "socket")
_thread = monkey.get_original("_thread", "start_new_thread")


class ThreadedServer:
    """A loopback listener that hands each connection to *serve* on a real
    thread of its own, until closed."""

    def __init__(self) -> None:
        self.listener = _socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.origin = "http://127.0.0.1:%d" % self.listener.getsockname()[1]
        _thread(self._accept, ())

    def _accept(self) -> None:
        while True:
            try:  # not accept(): it would wrap the socket in gevent's class
                fd, _ = self.listener._accept()  # type: ignore[attr-defined]
            except OSError:  # closed: the test is over
                return
            _thread(self.serve, (_socket(fileno=fd),))

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    @staticmethod
    def spawn(function: Callable[..., None], *args: Any) -> None:
        """Run *function* on another real thread."""
        _thread(function, args)

    @staticmethod
    def connect(host: str, port: int) -> socket.socket:
        """A real socket connected to *host*:*port*."""
        sock = _socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.connect((host, port))
        return sock

    def close(self) -> None:
        self.listener.close()


def page(results: list[Any], cursor: str = "") -> dict[str, Any]:
    """One page of a SpyCloud list answer."""
    return {"cursor": cursor, "hits": len(results), "results": results}


def free_slots(app: Any, api_key: str) -> int:
    """How many slots of *api_key*'s cap on SpyCloud calls are free in the
    relay *app* now (each taken, counted and given back)."""
    limits = app.extensions["relay"].spycloud.transport.limits
    taken = []
    while (slot := limits.acquire(key_digest(api_key), 0)) is not None:
        taken.append(slot)
    for slot in taken:
        limits.release(slot)
    return len(taken)


def observables(kind: str, values: Iterable[str]) -> list[dict[str, str]]:
    """An observe body of *values*, all of one type."""
    return [{"type": kind, "value": value} for value in values]


def post(stack: Any, path: str, body: Any = None, *, token: str | None = None,
         headers: Mapping[str, str] | None = None, timeout: float = 30,
         **claims: Any) -> requests.Response:
    """POST *body* to *path* of the relay of *stack*, with *token* (or one
    minted with *claims*); on a stack whose log is scanned after the test
    (`conftest.assert_log_clean`), the token and the observables' values
    are noted for the scan to look for."""
    token = token or stack.token(**claims)
    if hasattr(stack, "tokens"):
        stack.tokens.append(token)
        if isinstance(body, list):
            stack.emails.update(o["value"] for o in body
                                if isinstance(o, dict) and "value" in o)
    return requests.post(stack.url + path, json=body, timeout=timeout,
                         headers={"Authorization": f"Bearer {token}",
                                  **(headers or {})})


def answer(stack: Any, path: str, body: Any = None, **kwargs: Any
           ) -> dict[str, Any]:
    """`post`, then the envelope of its HTTP 200 JSON answer."""
    response = post(stack, path, body, **kwargs)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    found: dict[str, Any] = response.json()
    return found


def wait_until(condition: Callable[[], bool], timeout: float = 5) -> None:
    """Wait until *condition* holds (checked every 10 ms), at most
    *timeout* seconds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)
