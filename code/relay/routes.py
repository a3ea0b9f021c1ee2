"""Thin views: validate → authorize → fetch → map → envelope."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from . import bodies, observables, refer as links, tiles
from .auth import Claims, reason_code
from .budget import Budget
from .context import Context
from .envelope import body, outcome
from .errors import (
    AuthorizationError, HealthCheckError, InvalidArgumentError, RelayError,
)
from .services import services
from .version import VERSION

log = logging.getLogger(__name__)
bp = Blueprint("relay", __name__)

ROUTES = {
    "POST /health": "checks the SpyCloud API key of the configuration token",
    "POST /observe/observables": "enriches email, user, ip and ipv6"
    " observables",
    "POST /refer/observables": "pivot links to the SpyCloud portal",
    "POST /tiles": "lists the dashboard tiles",
    "POST /tiles/tile": "describes one dashboard tile",
    "POST /tiles/tile-data": "one tile's data for a period",
    "POST /version": "shows the relay's version",
    "GET /watchdog": "answers the Health-Check header (liveness)",
    "GET /ready": "says the process serves (readiness; calls no SpyCloud)",
}


def _budget() -> Budget:
    """The request's time budget, counted from its arrival: it covers the
    body's reading and the JWKS fetch too."""
    return Budget(services().settings.request_budget, started=g.started)


def _answer(data: Any, errors: Iterable[RelayError] = ()) -> Response:
    """Answer in the envelope, noting the outcome for the access line."""
    errors = list(errors)
    g.outcome = outcome(errors)
    return jsonify(body(data, errors))


def _authorized() -> tuple[Context, Claims]:
    """Verify the request's token; return the request's context (its key,
    budget and id, one value for everything below) and the claims."""
    budget = _budget()
    try:
        claims = services().authorizer.authorize(
            request.headers.get("Authorization"), request.url_root, budget)
    except AuthorizationError as error:
        log.info("authorization failed", extra={"fields": {
            "reason": reason_code(error), "request_id": g.request_id}})
        raise
    ctx = g.context = Context(claims.key, budget, g.request_id)
    return ctx, claims


@bp.get("/")
def index() -> Response:
    """Tell a person with curl or a browser what this is."""
    return jsonify({
        "name": "SpyCloud Employee ATO Prevention relay for Cisco XDR",
        "version": VERSION,
        "routes": ROUTES,
        "docs": "See README.md (registering in XDR) and docs/operating.md"
        " (running, configuration).",
    })


@bp.post("/version")
def version() -> Response:
    """Show the relay's version, not wrapped in `data`."""
    return jsonify({"version": VERSION})


@bp.get("/watchdog")
def watchdog() -> Response:
    """Echo the Health-Check header, as XDR's liveness probe expects."""
    value = request.headers.get("Health-Check")
    if not value:
        raise HealthCheckError()
    return _answer(value)


@bp.get("/ready")
def ready() -> Response:
    """Say this process serves requests, for an orchestrator's readiness
    probe: it depends on nothing outside the process, so a SpyCloud or
    Redis outage never takes every replica out of its load balancer."""
    return _answer("ready")


@bp.post("/health")
def health() -> Response:
    """Make one authenticated SpyCloud call with the token's key."""
    ctx, _ = _authorized()
    services().spycloud.ping(ctx)
    return _answer({"status": "ok"})


def _observables() -> observables.Query:
    """Validate the body and keep the observables to look up."""
    loaded = bodies.observables(request.get_json(force=True, silent=True))
    g.observables = len(loaded)
    return observables.supported(loaded,
                                 services().settings.max_emails_per_request)


@bp.post("/observe/observables")
def observe() -> Response:
    """Answer sightings, indicators and relationships for observables."""
    query = _observables()
    if not query.observables:
        return _answer({}, query.warnings)
    ctx, claims = _authorized()
    bundle, errors = services().lookup.observe(ctx, query.observables,
                                               claims.options)
    return _answer(bundle.json(),
                   [*query.warnings, *claims.warnings, *errors])


@bp.post("/refer/observables")
def refer() -> Response:
    """Answer pivot links: Search for each observable, Browse per breach."""
    query = _observables()
    if not query.observables:
        return _answer([], query.warnings)
    ctx, claims = _authorized()
    portal = services().settings.portal_url
    found, errors = services().lookup.breaches(ctx, query.observables,
                                               claims.options)
    references: dict[str, dict[str, object]] = {}
    for observable, catalogs in zip(query.observables, found):
        for link in [links.search(portal, observable.type, observable.value),
                     *links.browse(portal, observable.type, catalogs or ())]:
            references.setdefault(str(link["id"]), link)
    return _answer(list(references.values()),
                   [*query.warnings, *claims.warnings, *errors])


TILE = {"tile_id": list(tiles.TILES)}
TILE_DATA = {**TILE, "period": list(tiles.PERIODS)}


def _tile_request(fields: dict[str, list[str]]) -> dict[str, str]:
    """Validate a tile route's body; no SpyCloud call for a bad one. Its
    message names at most a few problems, so a large body from anyone
    cannot make a large answer."""
    payload = request.get_json(force=True, silent=True)
    if payload is None and request.get_data():
        raise InvalidArgumentError("The body is not JSON.")
    return bodies.tile(payload, fields)


@bp.post("/tiles")
def tile_list() -> Response:
    """List the definitions of the dashboard tiles (the body, which XDR
    may send, is ignored)."""
    _authorized()
    return _answer([tiles.definition(t) for t in tiles.TILES])


@bp.post("/tiles/tile")
def tile() -> Response:
    """Describe one tile."""
    wanted = _tile_request(TILE)
    _authorized()
    return _answer(tiles.definition(wanted["tile_id"]))


@bp.post("/tiles/tile-data")
def tile_data() -> Response:
    """Answer one tile's data for a period, from the watchlist."""
    wanted = _tile_request(TILE_DATA)
    ctx, _ = _authorized()
    data, errors = services().dashboard.tile_data(
        ctx, wanted["tile_id"], wanted["period"])
    return _answer(data, errors)
