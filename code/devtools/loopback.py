"""A threaded HTTP server on loopback that tests can start and stop."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    # Python's default listen backlog is 5: a burst of new connections
    # (ten SpyCloud calls at once) lost SYNs and waited a second for the
    # client's retry. The kernel caps it at net.core.somaxconn.
    request_queue_size = 1024
    daemon_threads = True


class LoopbackServer:
    """Serves *handler* in a background thread (or in the foreground)."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], host: str, port: int,
        tls: tuple[str, str] | None = None,
    ) -> None:
        """Serve on *host*:*port* (0: any free port); with *tls* (the paths
        of a certificate and its key), serve HTTPS."""
        self.httpd = _Server((host, port), handler)
        self.scheme = "https" if tls else "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket,
                                                    server_side=True)
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        daemon=True)

    @property
    def address(self) -> str:
        """Return `host:port` as clients should name it."""
        host, port = self.httpd.server_address[:2]
        return f"{host}:{port}"

    def start(self):
        """Serve in a background thread; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def serve(self) -> None:
        """Serve in the foreground until Ctrl-C."""
        try:
            self.httpd.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.httpd.server_close()
