"""`create_app`: the Flask app with its per-app resources, routes, error
handlers, body cap and access log."""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import IO

import stamina
from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import (
    BadRequest, HTTPException, RequestEntityTooLarge, RequestTimeout,
)
from werkzeug.middleware.proxy_fix import ProxyFix

from . import http, metrics, routes
from .auth import Authorizer, JwksCache
from .catalog_cache import (
    MISSING_TTL, CatalogCache, CatalogStore, SharedCatalogCache,
)
from .concurrency import Expired, deadline
from .dashboard import Dashboard
from .envelope import body, outcome
from .errors import RelayError
from .flights import SharedFlight
from .jsonio import OrjsonProvider
from .limits import KeyLimits, Limits, SharedKeyLimits
from .logs import log_retry
from .lookup import Lookup
from .records_cache import RecordsCache
from .services import Services
from .settings import Settings
from .shared import Redis, Tls
from .spycloud import SpyCloud
from .transport import Transport

log = logging.getLogger("relay")
LEASE_MARGIN = 5.0  # seconds a shared slot's lease outlives the budget
# An incoming X-Request-Id is kept when it is a plain token; else a new one.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Set in a request's WSGI environ when its connection must not be reused
# (its body was not read whole); gunicorn.conf.py's post_request closes it.
CLOSE = "relay.close_connection"
CHUNK = 65_536  # bytes of a request body read at a time


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], dt.datetime] = _utcnow,
) -> Flask:
    """Build the relay with *settings* (default: from the environment);
    *clock* drives the JWKS cache's lifetimes and *now* is the wall clock
    of lookback days and tile windows (tests pass fakes)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    if settings.trust_proxy_headers:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_proto=1, x_host=1)
    app.extensions["relay"] = _services(settings, clock, now)
    # Retries are logged by the relay's hook, whoever launches it
    # (stamina's hooks are process-wide; its default logs bare names).
    stamina.instrumentation.set_on_retry_hooks([log_retry])
    app.register_blueprint(routes.bp)
    _register_access_log(app)  # first: the body's deadline starts there
    _register_body_read(app, settings.max_body_bytes, settings.body_timeout,
                        settings.request_budget)
    _register_error_handlers(app)
    return app


def _shared_state(settings: Settings) -> tuple[
        CatalogStore, Limits, SharedFlight | None]:
    """The catalog cache, the per-key cap and the tiles' flight: in
    process, or with `REDIS_URL` shared by every worker and replica."""
    local = CatalogCache(settings.catalog_cache_ttl,
                         settings.catalog_cache_size)
    own = KeyLimits(settings.max_concurrency)
    if not settings.redis_url:
        return local, own, None
    store = Redis(settings.redis_url, settings.redis_timeout,
                  settings.redis_retry_interval,
                  tls=Tls(settings.redis_ca_file, settings.redis_cert_file,
                          settings.redis_key_file),
                  sentinel_password=settings.redis_sentinel_password)
    return (
        SharedCatalogCache(store, local, settings.catalog_cache_ttl,
                           MISSING_TTL),
        # A slot is held at most for its request's budget (a trickled body
        # is read until then), so its lease outlives that.
        SharedKeyLimits(store, own, settings.request_budget + LEASE_MARGIN),
        SharedFlight(store, settings.tiles_cache_ttl, settings.request_budget),
    )


def _services(settings: Settings, clock: Callable[[], float],
              now: Callable[[], dt.datetime]) -> Services:
    """Build what the routes serve with."""
    catalogs, limits, flight = _shared_state(settings)
    # One HTTP client for every call out: SpyCloud's and the JWKS hosts'.
    client = http.Client(connections=settings.worker_connections,
                         ca_bundle=settings.ca_bundle or settings.ssl_cert_file)
    spycloud = SpyCloud(Transport(settings, client, limits),
                        settings.max_pages, settings.domain_max_pages)
    jwks = JwksCache(
        client,
        settings.jwks_url_template,
        ttl=settings.jwks_cache_ttl,
        refresh_interval=settings.jwks_refresh_interval,
        stale_ttl=settings.jwks_stale_ttl,
        clock=clock,
    )
    return Services(
        settings=settings,
        authorizer=Authorizer(settings, jwks),
        spycloud=spycloud,
        lookup=Lookup(
            spycloud, catalogs,
            RecordsCache(settings.records_cache_ttl,
                         settings.records_cache_size),
            fanout=settings.max_concurrency,
            answer_cap=settings.max_answer_sightings,
            clock=now,
        ),
        dashboard=Dashboard(spycloud, catalogs, settings.tiles_cache_ttl,
                            settings.tiles_max_pages,
                            settings.max_concurrency, now, flight),
    )


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(RelayError)
    def relay_error(error: RelayError) -> Response:
        g.outcome = outcome([error])
        return jsonify(body(errors=[error]))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        response = jsonify({
            "code": error.code,
            "message": error.description,
            "reason": type(error).__name__,
        })
        response.status_code = error.code or 500
        g.outcome = f"http_{response.status_code}"
        # Keep what the status needs, e.g. the `Allow` header of a 405.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unexpected error on %s", request.path,
                      extra={"fields": {"request_id": g.get("request_id")}})
        g.outcome = "fatal:unknown"
        return jsonify(body(errors=[
            RelayError("An unexpected error occurred.", code="unknown")
        ]))


def _register_body_read(app: Flask, cap: int, timeout: float,
                        budget: float) -> None:
    @app.before_request
    def read_body() -> None:
        """Read a POST's body whole, by its deadline, before any view runs.

        The body must arrive within *timeout* seconds of the request's
        start (and within its budget), or the answer is 408 and the
        connection is closed: a client that never finishes its body holds
        a connection for seconds, not for as long as it likes. A body over
        the cap is refused unread (413) however it is sent; one that cannot
        be read (a bad chunk, a client that hung up) is a 400.
        """
        if request.method != "POST":
            return
        environ = request.environ
        length = request.content_length
        if length is not None and length > cap:
            environ[CLOSE] = True  # its body is never read
            raise RequestEntityTooLarge()
        left = g.started + min(timeout, budget) - time.monotonic()
        try:
            with deadline(left):
                data = _read(environ["wsgi.input"], length, cap)
        except Expired:
            environ[CLOSE] = True
            log.info("request body too slow", extra={"fields": {
                "request_id": g.request_id, "seconds": f"{timeout:g}"}})
            raise RequestTimeout(f"The request body did not arrive within"
                                 f" {min(timeout, budget):g} s.") from None
        except Exception as error:  # a bad chunk, a client that hung up
            environ[CLOSE] = True
            log.info("request body unreadable", extra={"fields": {
                "request_id": g.request_id, "error": type(error).__name__}})
            raise BadRequest("The request body could not be read.") from None
        if len(data) > cap:
            environ[CLOSE] = True
            raise RequestEntityTooLarge()
        # From here on the body is an ordinary one of known length.
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)


def _read(stream: IO[bytes], length: int | None, cap: int) -> bytes:
    """Read a body of *length* bytes (None: chunked, at most *cap* + 1)."""
    want = cap + 1 if length is None else length
    parts, got = [], 0
    while got < want:
        part = stream.read(min(CHUNK, want - got))
        if not part:
            if length is not None:  # the client hung up mid-body
                raise EOFError("the body ended early")
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _register_access_log(app: Flask) -> None:
    @app.before_request
    def start_clock() -> None:
        """Note the request's arrival and id first: every answer, an
        unreadable body's too, carries them."""
        g.started = time.monotonic()
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex

    @app.after_request
    def access_log(response: Response) -> Response:
        context = g.get("context")
        elapsed = time.monotonic() - g.get("started", time.monotonic())
        route = request.url_rule.rule if request.url_rule else "unmatched"
        result = g.get("outcome", "ok")
        response.headers["X-Request-Id"] = g.get("request_id", "-")
        metrics.REQUESTS.labels(route, result.partition(":")[0]).inc()
        metrics.DURATION.labels(route).observe(elapsed)
        log.info("%s %s %s", request.method, request.path,
                 response.status_code, extra={"fields": {
                     "duration": f"{elapsed:.3f}",
                     "request_id": g.get("request_id", "-"),
                     "outcome": result,
                     "observables": g.get("observables", 0),
                     "spycloud_calls": context.calls.count if context else 0,
                 }})
        return response
