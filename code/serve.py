"""The relay's entry point: `cd code && python serve.py` (the container's
command). Any argument is passed on to gunicorn.

It checks every setting before gunicorn is even imported (gunicorn reads
`WEB_CONCURRENCY` itself, at import, and would die on `two` with a
traceback), chooses Prometheus' multiprocess mode before the relay imports
the client, then runs gunicorn with `gunicorn.conf.py` and `app:app`.
"""

import os
import sys
import tempfile


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
