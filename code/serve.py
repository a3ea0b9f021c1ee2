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
        Settings.from_env()
    except SettingsError as error:
        print(f"relay: cannot start: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    from gunicorn.app.wsgiapp import run

    sys.argv = ["gunicorn", *sys.argv[1:], "app:app"]
    run()


if __name__ == "__main__":
    main()
