"""Gunicorn settings for an I/O-bound relay: threads, timeouts, stdout logs."""

import ctypes
import gc
import ctypes.util
import os

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

bind = os.environ.get("BIND", "0.0.0.0:9090")
# The relay mostly waits on SpyCloud, so one process with many threads
# serves a container: its catalog cache, JWKS cache and per-key cap are then
# shared by every request. More processes each keep their own.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
# Above the relay's own budget for SpyCloud, so a slow SpyCloud gives the
# analyst an answer with an error rather than a killed worker.
timeout = int(float(os.environ.get("RELAY_REQUEST_BUDGET", "25"))) + 15
graceful_timeout = 10
keepalive = 5
# The relay writes its own access line (no headers, no query strings).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Bound request lines and headers; bodies are capped by the app (413).
limit_request_line = 8190
limit_request_fields = 100
# No runtime control socket: nothing manages the relay that way, and a
# container's user may have no home directory to put it in.
control_socket_disable = True


def post_worker_init(worker):
    """Exempt what start-up built (modules, the app) from garbage collection
    scans: each full collection would otherwise walk ~45,000 objects that
    live as long as the worker, while an answer builds thousands more."""
    gc.freeze()
