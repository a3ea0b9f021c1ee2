"""requests' adapter for SpyCloud calls: a keep-alive pool whose idle
connections are checked without a trip through gevent's event loop.

Before it reuses a pooled connection, urllib3 asks whether the server has
closed it: a `poll` of timeout 0 on its socket. Under gevent that `poll`
is the cooperative one, which parks the greenlet until the event loop has
run everything else that is ready. So every SpyCloud call waited, before
sending, for every other ready greenlet: a batch's ten calls left only
once all ten were prepared, and a call started as a slot freed up waited
for the mapping of whole observables. The check here asks the operating
system directly; it never waits, so there is nothing to yield for.
"""

from __future__ import annotations

import select
import socket
from typing import Any

from gevent import monkey
from requests.adapters import HTTPAdapter
from urllib3 import poolmanager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# The operating system's poll, whether or not gevent has patched `select`.
_poll = monkey.get_original("select", "poll")


def _ended_or_talking(sock: socket.socket) -> bool:
    """Say at once whether an idle connection has anything to read: the
    end of the stream, or bytes nobody asked for. Either way it cannot
    carry a new request."""
    poller = _poll()
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


class Adapter(HTTPAdapter):
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
