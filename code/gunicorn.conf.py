"""Gunicorn settings for an I/O-bound relay, read from the relay's own table
of settings (`relay/settings.py`): a value that cannot be used stops the
master here, before any worker starts, with one line naming it."""

import ctypes
import ctypes.util
import gc
import os
import resource
import sys
import tempfile

# gevent resolves names with c-ares, on the event loop (its thread-pool
# resolver stalled the first concurrent connections by a second); set here
# too for `gunicorn app:app`, which does not go through serve.py.
os.environ.setdefault("GEVENT_RESOLVER", "ares")

# Prometheus' multiprocess mode must be chosen before the client is
# imported (by the relay, in each worker): a directory shared by them all.
if os.environ.get("METRICS_BIND", "").strip():
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                          tempfile.mkdtemp(prefix="relay-metrics-"))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gunicorn.glogging import Logger  # noqa: E402

from relay.logs import config as _log_config  # noqa: E402
from relay.settings import Settings, SettingsError  # noqa: E402

try:
    SETTINGS = Settings.from_env()
except SettingsError as _error:
    print(f"relay: cannot start: {_error}", file=sys.stderr, flush=True)
    sys.exit(2)

bind = SETTINGS.bind
# The relay mostly waits: on clients (the port may face the network with no
# buffering proxy), on SpyCloud, on Redis. gevent's worker gives each
# connection and each SpyCloud call a greenlet on cooperative sockets, so a
# slow client or a hanging call holds a few KB, never a thread another
# caller needs, and a request's deadline can interrupt its blocked calls.
# One process serves a container: its catalog cache, JWKS cache and per-key
# cap are then shared by every request. More processes each keep their own.
worker_class = "gevent"
workers = SETTINGS.workers
worker_connections = SETTINGS.worker_connections
# Above the relay's own budget for SpyCloud, so a slow SpyCloud gives the
# analyst an answer with an error rather than a killed worker.
timeout = int(SETTINGS.request_budget) + 15
# A stopping worker lets the requests it holds run out their budget.
graceful_timeout = int(SETTINGS.request_budget) + 5
keepalive = 5
# The relay writes its own access line (no headers, no query strings), in
# the one format configured here for the relay, gunicorn and libraries.
accesslog = None
errorlog = "-"
loglevel = SETTINGS.log_level.lower()
logconfig_dict = _log_config(SETTINGS.log_level, SETTINGS.log_format)


class _Logger(Logger):
    """gunicorn's logger without its access line: with a logging config,
    gunicorn builds every request's line (its atoms) whether or not any
    handler takes it, 2 % of a worker's CPU under `make load`."""

    def access(self, resp, req, environ, request_time):
        pass


logger_class = _Logger

# Bound request lines and headers; bodies are capped by the app (413).
limit_request_line = 8190
limit_request_fields = 100
# No runtime control socket: nothing manages the relay that way, and a
# container's user may have no home directory to put it in.
control_socket_disable = True

# Each connection a worker holds is a file descriptor, and so is each
# connection to SpyCloud it keeps: raise the soft open-files limit to what
# WORKER_CONNECTIONS needs (the hard limit is the ceiling), so a worker
# really holds that many slow clients before new ones wait.
FILES_PER_CONNECTION = 2  # the client's socket, and one to SpyCloud
FILES_SPARE = 256  # listeners, logs, Redis, the JWKS hosts, libraries
_wanted = SETTINGS.worker_connections * FILES_PER_CONNECTION + FILES_SPARE
# Idle and slow clients hold no SpyCloud connection: below this, a worker
# cannot even hold WORKER_CONNECTIONS clients.
_needed = SETTINGS.worker_connections + FILES_SPARE
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft != resource.RLIM_INFINITY and _soft < _wanted:
    _soft = _wanted if _hard == resource.RLIM_INFINITY else min(_wanted, _hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_soft, _hard))
OPEN_FILES = _soft

# glibc gives each thread that allocates its own malloc arena (up to 8 per
# core), and memory freed in one is not reused by the others: a relay whose
# threads each decode large SpyCloud pages would grow with its thread
# count. Two arenas keep a worker's memory to what its answers hold. Set
# here, in the master, so every worker inherits it; no-op off glibc.
M_ARENA_MAX = -8
_libc = ctypes.util.find_library("c")
if _libc:
    try:
        ctypes.CDLL(_libc).mallopt(M_ARENA_MAX, 2)
    except AttributeError:  # a C library without mallopt
        pass


def when_ready(server):
    """Say once, in the master, what the relay runs with; serve metrics."""
    import logging

    from relay import metrics
    from relay.version import VERSION

    fields = SETTINGS.describe()
    fields["open_files"] = OPEN_FILES
    fields["audience"] = SETTINGS.jwt_audience or (
        "each request's own URL (Host header): pin JWT_AUDIENCE to the URL"
        " registered in XDR in production")
    logging.getLogger("relay").info("relay %s starting", VERSION,
                                    extra={"fields": fields})
    from relay.settings import strangers

    for name, meant in strangers(os.environ):
        logging.getLogger("relay").warning(
            "%s is not a setting of the relay%s; it is ignored", name,
            f" (did you mean {meant}?)" if meant else "")
    if OPEN_FILES < _needed:
        logging.getLogger("relay").warning(
            "the open-files limit (%d) holds fewer than WORKER_CONNECTIONS"
            " (%d) connections per worker; raise the hard limit (ulimit -Hn)",
            OPEN_FILES, SETTINGS.worker_connections)
    if SETTINGS.metrics_bind:
        metrics.serve(SETTINGS.metrics_bind)


# An answer allocates tens of thousands of short-lived containers (decoded
# records, CTIM documents), nearly all freed by reference counting: with
# Python's default of a young collection every 700 more allocations than
# frees, a batch pays for scans that find almost nothing. One every 20,000
# cut the worker's CPU per 10-email batch by 5-10 % (measured paired), and
# cyclic garbage still goes within about one request's worth of objects.
GC_YOUNG_THRESHOLD = 20_000


def post_worker_init(worker):
    """Exempt what start-up built (modules, the app) from garbage
    collection scans: each full collection would otherwise walk ~45,000
    objects that live as long as the worker. Collect the young generation
    less often (GC_YOUNG_THRESHOLD)."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def post_request(worker, req, environ, resp):
    """Close a connection whose request body was not read whole (too slow,
    too large or unreadable) instead of waiting to read past it."""
    from relay.factory import CLOSE

    if environ.get(CLOSE):
        req.must_close = True
