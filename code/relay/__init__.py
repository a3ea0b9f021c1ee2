"""The SpyCloud relay for Cisco XDR: `create_app` builds the Flask app."""

from __future__ import annotations

import datetime as dt
import io
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from . import routes
from .auth import JwksCache
from .catalog_cache import CatalogCache
from .dashboard import Dashboard
from .envelope import body
from .errors import RelayError
from .jsonio import OrjsonProvider
from .lookup import Lookup
from .records_cache import RecordsCache
from .settings import Settings
from .spycloud import SpyCloud
from .transport import Transport
from .version import VERSION

log = logging.getLogger("relay")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class Relay:
    """The per-app resources views need, kept in `app.extensions`."""

    settings: Settings
    spycloud: SpyCloud
    lookup: Lookup
    dashboard: Dashboard
    jwks: JwksCache


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
    _configure_logging(settings.log_level)
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    if settings.trust_proxy_headers:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)
    spycloud = SpyCloud(Transport(settings), settings.max_pages)
    lookup = Lookup(
        spycloud,
        CatalogCache(settings.catalog_cache_ttl, settings.catalog_cache_size),
        RecordsCache(settings.records_cache_ttl, settings.records_cache_size),
        now,
    )
    app.extensions["relay"] = Relay(
        settings=settings,
        spycloud=spycloud,
        lookup=lookup,
        dashboard=Dashboard(lookup, settings.tiles_cache_ttl,
                            settings.tiles_max_pages, now),
        jwks=JwksCache(
            requests.Session(),
            settings.jwks_url_template,
            ttl=settings.jwks_cache_ttl,
            refresh_interval=settings.jwks_refresh_interval,
            clock=clock,
        ),
    )
    app.register_blueprint(routes.bp)
    _register_body_cap(app, settings.max_body_bytes)
    _register_error_handlers(app)
    _register_access_log(app)
    log.info("relay %s starting with %s", VERSION, settings.describe())
    return app


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(RelayError)
    def relay_error(error: RelayError):
        return jsonify(body(errors=[error]))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        response = jsonify({
            "code": error.code,
            "message": error.description,
            "reason": type(error).__name__,
        })
        response.status_code = error.code or 500
        # Keep what the status needs, e.g. the `Allow` header of a 405.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unexpected error on %s", request.path)
        return jsonify(body(errors=[
            RelayError("An unexpected error occurred.", code="unknown")
        ]))


def _register_body_cap(app: Flask, cap: int) -> None:
    @app.before_request
    def read_capped_body() -> None:
        """Refuse a body over the cap however it is sent: a chunked body
        has no Content-Length for Flask's own check to look at."""
        if request.content_length is None and request.method == "POST":
            data = request.environ["wsgi.input"].read(cap + 1)
            if len(data) > cap:
                raise RequestEntityTooLarge()
            # From here on the body is an ordinary one of known length.
            request.environ["wsgi.input"] = io.BytesIO(data)
            request.environ["CONTENT_LENGTH"] = str(len(data))
            request.environ.pop("HTTP_TRANSFER_ENCODING", None)


def _register_access_log(app: Flask) -> None:
    @app.before_request
    def start_clock() -> None:
        g.started = time.monotonic()

    @app.after_request
    def access_log(response):
        budget = g.get("budget")
        log.info(
            "%s %s %s %.3fs observables=%d spycloud_calls=%d",
            request.method,
            request.path,
            response.status_code,
            time.monotonic() - g.get("started", time.monotonic()),
            g.get("observables", 0),
            budget.calls if budget else 0,
        )
        return response


def _configure_logging(level: str) -> None:
    if not any(getattr(h, "_relay", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
        ))
        handler._relay = True
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(level)
