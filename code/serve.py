"""The relay's entry point: `cd code && python serve.py` (the container's
command). Any argument is passed on to gunicorn.

It checks every setting before gunicorn is even imported (gunicorn reads
`WEB_CONCURRENCY` itself, at import, and would die on `two` with a
traceback), chooses Prometheus' multiprocess mode before the relay imports
the client, then runs gunicorn with `gunicorn.conf.py` and `app:app`.
"""

# Cooperative sockets before anything else is imported (gunicorn imports
# ssl, requests captures ssl's classes): gevent's worker patches again in
# each worker, which is then a no-op. gevent's default resolver runs
# getaddrinfo on a thread pool, which stalled the first concurrent
# connections by a second here; c-ares resolves on the event loop.
import os

os.environ.setdefault("GEVENT_RESOLVER", "ares")

from gevent import monkey  # noqa: E402

monkey.patch_all()

import sys  # noqa: E402
import tempfile  # noqa: E402


def main() -> None:
    """Refuse unusable settings in one line; otherwise run gunicorn."""
    if os.environ.get("METRICS_BIND", "").strip():
        # The workers share a directory of counters; the master sums them.
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                              tempfile.mkdtemp(prefix="relay-metrics-"))
    from relay.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
        refuse_a_busy(settings.bind)
    except SettingsError as error:
        print(f"relay: cannot start: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    from gunicorn.app.wsgiapp import run

    sys.argv = ["gunicorn", *sys.argv[1:], "app:app"]
    run()


def refuse_a_busy(bind: str) -> None:
    """Raise SettingsError if another program listens on *bind* (gunicorn
    would retry for 5 s, logging ten errors, before giving up)."""
    import errno
    import socket

    from relay.settings import SettingsError

    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise SettingsError(f"BIND={bind!r} cannot be used: another"
                                    " program listens there") from None
            raise SettingsError(f"BIND={bind!r} cannot be used:"
                                f" {error.strerror}") from None


if __name__ == "__main__":
    main()
