"""Every call the relay makes out, to SpyCloud and to the JWKS hosts: one
GET, its whole answer read by a deadline and under a size cap.

The client is geventhttpclient's: made for gevent's sockets, it parses
answers in C (llhttp), and a call costs a third of the CPU it did through
requests' adapter, urllib3 and http.client (whose header parsing goes
through the email package): 125 against 370 µs per SpyCloud page on
loopback. One keep-alive pool per origin; the proxies of the environment
(`HTTPS_PROXY`, `NO_PROXY`...), read once per origin as requests reads
them; the operator's CA bundle (`REQUESTS_CA_BUNDLE`, else
`SSL_CERT_FILE`), else certifi's, for every call alike. Redirects are
never followed.

Before it reuses a pooled connection, the pool asks whether the server
has closed it: a `select` of timeout 0. Under gevent that `select` is the
cooperative one, which then yields, parking the greenlet until the event
loop has run everything else that is ready: every call would wait, before
sending, for every other ready greenlet. The pools here ask the operating
system directly; that never waits, so there is nothing to yield for.
"""

from __future__ import annotations

import select
import socket
import ssl
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import certifi
import requests
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError
from requests.structures import CaseInsensitiveDict

from .concurrency import Expired, deadline, os_poll

CHUNK = 65_536  # bytes read at a time from an answer


@dataclass(frozen=True)
class Reply:
    """One answer, its body read whole."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpError(Exception):
    """A call that got no usable answer; `kind` names why, for logs."""

    kind = "error"


class OutOfTime(HttpError):
    """The caller's deadline ran out during the exchange."""

    kind = "timeout"


class TimedOut(HttpError):
    """The connect or read timeout ran out (worth another try)."""

    kind = "timeout"


class Unreachable(HttpError):
    """No connection, or it broke (worth another try)."""

    kind = "connection"


class Unverified(HttpError):
    """The server's certificate failed verification; `reason` says why."""

    kind = "tls"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooLarge(HttpError):
    """The answer's body is over the cap; `status` is the answer's."""

    kind = "too_large"

    def __init__(self, cap: int, status: int) -> None:
        super().__init__(cap)
        self.cap = cap
        self.status = status


class Client:
    """GETs with one pool per origin, the environment's proxies and one CA
    bundle."""

    def __init__(self, *, connections: int, ca_bundle: str | None) -> None:
        # At most one connection per connection a worker serves, per origin.
        self._connections = connections
        self._ca = ca_bundle or certifi.where()
        self._pools: dict[tuple[str, float, float], HTTPClient] = {}
        # Idle connections are closed with the client, not left to the GC.
        weakref.finalize(self, _close, self._pools)

    def get(self, url: str, headers: Mapping[str, str], *,
            timeout: tuple[float, float], within: float,
            max_bytes: int) -> Reply:
        """GET *url* and read its whole answer within *within* seconds
        (connect and read each bounded by *timeout* too), refusing a body
        over *max_bytes*; raise an `HttpError` otherwise."""
        try:
            with deadline(within):  # the connect and read timeouts' too
                return self._exchange(url, headers, timeout, max_bytes)
        except Expired:
            raise OutOfTime() from None

    def _exchange(self, url: str, headers: Mapping[str, str],
                  timeout: tuple[float, float], max_bytes: int) -> Reply:
        parts = urlsplit(url)
        try:
            pool = self._pool(parts, timeout)
            response = pool.get(
                (parts.path or "/") + ("?" + parts.query if parts.query
                                       else ""),
                # Answers are read as they come: never compressed.
                headers={**headers, "Accept-Encoding": "identity"})
            try:
                return Reply(response.status_code, _headers(response),
                             _read(response, max_bytes))
            finally:
                response.release()  # kept alive only if read whole
        except ssl.SSLError as exc:
            raise Unverified(_reason(exc)) from exc
        except TimeoutError as exc:
            raise TimedOut() from exc
        except (OSError, HTTPParseError) as exc:
            raise Unreachable() from exc
        except RuntimeError as exc:  # a proxy refused to CONNECT
            raise Unreachable() from exc
        except ValueError as exc:  # a header's value the protocol forbids
            raise HttpError("invalid request") from exc

    def _pool(self, parts: SplitResult, timeout: tuple[float, float]
              ) -> HTTPClient:
        """The pool of *parts*' origin for these timeouts (a caller's
        settings: a few), made once; its proxy is the environment's for
        that origin, as requests reads it (an `http://` proxy: a tunnel for
        HTTPS)."""
        origin = f"{parts.scheme}://{parts.netloc}"
        key = (origin, *timeout)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        proxies = requests.utils.get_environ_proxies(origin)
        proxy = proxies.get(parts.scheme) or proxies.get("all")
        via = urlsplit(proxy if "://" in proxy else "http://" + proxy) \
            if proxy else None
        if via is not None and via.scheme != "http":
            raise HttpError(f"unsupported proxy scheme {via.scheme!r}")
        https = parts.scheme == "https"
        pool = self._pools[key] = _Origin(
            parts.hostname or "", parts.port or (443 if https else 80),
            ssl=https,
            ssl_options={"ca_certs": self._ca} if https else None,
            connection_timeout=timeout[0], network_timeout=timeout[1],
            concurrency=self._connections,
            proxy_host=via.hostname if via else None,
            proxy_port=(via.port or 80) if via else None,
            proxy_user=via.username if via else None,
            proxy_password=via.password if via else None,
        )
        return pool


class _Origin(HTTPClient):
    """geventhttpclient's client of one origin, its connection pool (which
    it builds itself, so the changes are made on it) changed twice: an
    idle connection is checked without yielding (`_alive`), and a request
    is sent again at most once when its connection turns out closed before
    any answer. (The library sends it again up to once per connection the
    pool may hold, fresh ones too: a server dropping every request would
    get hundreds. Retries are the caller's, with backoff.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connection_pool._is_socket_alive = _alive  # type: ignore[method-assign]
        self._connection_pool.size = 0  # its sends: size + 2


def _close(pools: dict[tuple[str, float, float], HTTPClient]) -> None:
    for pool in pools.values():
        pool.close()


def _alive(sock: socket.socket | None) -> bool:
    """Say at once whether an idle connection can carry a new request: not
    if it is closed, or has anything to read (the end of the stream, or
    bytes nobody asked for)."""
    if sock is None or sock.fileno() < 0:
        return False
    poller = os_poll()
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)


def _headers(response: Any) -> Mapping[str, str]:
    """An answer's headers, names in any case (a repeated one joined)."""
    found: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for name, value in response.items():
        found[name] = f"{found[name]}, {value}" if name in found else value
    return found


def _read(response: Any, cap: int) -> bytes:
    """Read the body a chunk at a time, refusing one over the cap."""
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(CHUNK):
        size += len(chunk)
        if size > cap:
            raise TooLarge(cap, response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(exc: BaseException) -> str:
    # The innermost cause names the certificate problem, not the URL.
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return str(exc) or type(exc).__name__
