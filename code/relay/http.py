"""Every call the relay makes out, to SpyCloud and to the JWKS hosts: one
GET, its whole answer read by a deadline and under a size cap.

One keep-alive pool (requests' adapter, without a Session: a Session's
cookie, hook and redirect handling cost a third of each call's CPU and no
call needs them), the proxies of the environment (`HTTPS_PROXY`,
`NO_PROXY`...) and the operator's CA bundle (`REQUESTS_CA_BUNDLE`, else
`SSL_CERT_FILE`) for every call alike. Redirects are never followed.

Before it reuses a pooled connection, urllib3 asks whether the server has
closed it: a `poll` of timeout 0 on its socket. Under gevent that `poll`
is the cooperative one, which parks the greenlet until the event loop has
run everything else that is ready, so every call waited, before sending,
for every other ready greenlet. The pool here asks the operating system
directly; it never waits, so there is nothing to yield for.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3 import poolmanager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

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
    """GETs with one pool, the environment's proxies and one CA bundle."""

    def __init__(self, *, connections: int, ca_bundle: str | None) -> None:
        # One idle connection kept per connection a worker serves at most.
        self._adapter = _Adapter(pool_connections=4, pool_maxsize=connections)
        self._verify: str | bool = ca_bundle or True
        self._proxies: dict[str, dict[str, str]] = {}

    def get(self, url: str, headers: Mapping[str, str], *,
            timeout: tuple[float, float], within: float,
            max_bytes: int) -> Reply:
        """GET *url* and read its whole answer within *within* seconds
        (connect and read each bounded by *timeout* too), refusing a body
        over *max_bytes*; raise an `HttpError` otherwise."""
        # Built directly: `PreparedRequest.prepare` parses the URL again and
        # consults an empty cookie jar on every call. URLs are the relay's
        # own (checked at start-up, paths quoted by their builders).
        request = requests.PreparedRequest()
        request.method = "GET"
        request.url = url
        request.headers = CaseInsensitiveDict(headers)
        try:
            with deadline(within):
                return self._exchange(request, url, (
                    min(timeout[0], within), min(timeout[1], within)),
                    max_bytes)
        except Expired:
            raise OutOfTime() from None

    def _exchange(self, request: requests.PreparedRequest, url: str,
                  timeout: tuple[float, float], max_bytes: int) -> Reply:
        try:
            response = self._adapter.send(
                request, timeout=timeout, proxies=self._proxies_for(url),
                verify=self._verify,
                stream=True)  # read below, in chunks, under the cap
            try:
                return Reply(response.status_code, response.headers,
                             _read(response, max_bytes))
            finally:
                response.close()
        except requests.exceptions.SSLError as exc:
            raise Unverified(_reason(exc)) from exc
        except requests.Timeout as exc:
            raise TimedOut() from exc
        except (requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError) as exc:
            raise Unreachable() from exc
        except requests.RequestException as exc:
            raise HttpError(type(exc).__name__) from exc

    def _proxies_for(self, url: str) -> dict[str, str]:
        """The environment's proxies for *url*'s host, read once per host
        (what a Session would read on every call)."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self._proxies.get(origin)
        if found is None:
            found = self._proxies[origin] = \
                requests.utils.get_environ_proxies(origin)
        return found


def _read(response: requests.Response, cap: int) -> bytes:
    """Read the body a chunk at a time, refusing one over the cap."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(CHUNK):
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


# --- a pool whose idle connections are checked without waiting ------------

def _ended_or_talking(sock: socket.socket) -> bool:
    """Say at once whether an idle connection has anything to read: the
    end of the stream, or bytes nobody asked for. Either way it cannot
    carry a new request."""
    poller = os_poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _Connection(HTTPConnection):
    @property
    def is_connected(self) -> bool:
        return self.sock is not None and not _ended_or_talking(self.sock)


class _TLSConnection(HTTPSConnection):
    @property
    def is_connected(self) -> bool:
        return self.sock is not None and not _ended_or_talking(self.sock)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


POOLS = {"http": _Pool, "https": _TLSPool}


class _Adapter(HTTPAdapter):
    """requests' `HTTPAdapter`, its pools (direct, and through an HTTP
    proxy) made of connections checked without waiting."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        # A SOCKS proxy's manager has pools of its own: keep them.
        if manager.pool_classes_by_scheme is poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = POOLS
        return manager
