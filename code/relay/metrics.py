"""Prometheus metrics of the relay (`docs/operating.md`, "Logs and
metrics", lists them).

Under gunicorn with `METRICS_BIND` set, `gunicorn.conf.py` points the
client at a directory shared by the workers (its multiprocess mode), and
the master serves their sum on that separate listener, never on the
XDR-facing port.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry, Counter, Histogram, multiprocess, start_http_server,
)

REQUESTS = Counter(
    "relay_requests", "Requests answered, by route and outcome"
    " (ok, partial, fatal, http_4xx)", ["route", "outcome"])
DURATION = Histogram(
    "relay_request_duration_seconds", "Time to answer a request, by route",
    ["route"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25))
SPYCLOUD_CALLS = Counter(
    "relay_spycloud_calls", "SpyCloud calls by endpoint and outcome (ok,"
    " retried, throttled, quota, error)", ["endpoint", "outcome"])
CACHE = Counter(
    "relay_cache_lookups", "Cache look-ups by cache (catalog, records, tiles)"
    " and result (hit, miss)", ["cache", "result"])
JWKS_FETCHES = Counter(
    "relay_jwks_fetches", "JWKS documents fetched from a jwks_host")
REDIS_FALLBACKS = Counter(
    "relay_redis_fallbacks", "Operations served by the in-process cache or"
    " cap because Redis did not answer")
REDIS_BAD_VALUES = Counter(
    "relay_redis_bad_values", "Values read from Redis that did not decode"
    " or fit, and commands Redis refused (treated as misses), by kind"
    " (catalog, tiles, reply)", ["kind"])
KEY_WAITS = Counter(
    "relay_key_limit_waits", "SpyCloud calls that waited for a slot of"
    " their key's concurrency cap")


def cache(name: str, hits: int, misses: int) -> None:
    """Count *hits* and *misses* of one cache."""
    if hits:
        CACHE.labels(name, "hit").inc(hits)
    if misses:
        CACHE.labels(name, "miss").inc(misses)


def serve(bind: str) -> None:
    """Serve the workers' summed metrics on *bind* (`HOST:PORT`), from a
    thread of the calling (master) process."""
    host, _, port = bind.rpartition(":")
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(int(port), host.strip("[]"), registry=registry)
