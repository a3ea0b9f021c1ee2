"""Thin views: validate → authorize → fetch → map → envelope."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from . import observables, refer as links, tiles
from .auth import Claims, authorize, reason_code
from .budget import Budget
from .envelope import body, outcome
from .errors import (
    AuthorizationError, HealthCheckError, InvalidArgumentError, RelayError,
)
from .settings import Settings
from .version import VERSION

if TYPE_CHECKING:  # the factory registers these routes
    from .factory import Relay

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
}


def _relay() -> Relay:
    relay: Relay = current_app.extensions["relay"]
    return relay


def _settings() -> Settings:
    return _relay().settings


def _budget() -> Budget:
    """The request's time budget, counted from its arrival: it covers the
    body's reading and the JWKS fetch too."""
    budget = g.budget = Budget(_settings().request_budget,
                               request_id=g.request_id, started=g.started)
    return budget


def _answer(data: Any, errors: Iterable[RelayError] = ()) -> Response:
    """Answer in the envelope, noting the outcome for the access line."""
    errors = list(errors)
    g.outcome = outcome(errors)
    return jsonify(body(data, errors))


def _claims(budget: Budget) -> Claims:
    relay = _relay()
    settings = relay.settings
    audience = settings.jwt_audience or request.url_root.rstrip("/")
    try:
        return authorize(
            request.headers.get("Authorization"),
            audience,
            settings.allowed_jwks_hosts,
            relay.jwks,
            budget,
            settings.max_entities_limit,
        )
    except AuthorizationError as error:
        log.info("authorization failed", extra={"fields": {
            "reason": reason_code(error), "request_id": g.request_id}})
        raise


@bp.get("/")
def index() -> Response:
    """Tell a person with curl or a browser what this is."""
    return jsonify({
        "name": "SpyCloud Employee ATO Prevention relay for Cisco XDR",
        "version": VERSION,
        "routes": ROUTES,
        "docs": "See README.md: running, configuration, registering in XDR.",
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


@bp.post("/health")
def health() -> Response:
    """Make one authenticated SpyCloud call with the token's key."""
    budget = _budget()
    claims = _claims(budget)
    _relay().spycloud.ping(claims.key, budget)
    return _answer({"status": "ok"})


def _observables() -> observables.Query:
    """Validate the body and keep the observables to look up."""
    loaded = observables.load(request.get_json(force=True, silent=True))
    g.observables = len(loaded)
    return observables.supported(loaded, _settings().max_emails_per_request)


@bp.post("/observe/observables")
def observe() -> Response:
    """Answer sightings, indicators and relationships for observables."""
    query = _observables()
    if not query.observables:
        return _answer({}, query.warnings)
    budget = _budget()
    claims = _claims(budget)
    bundle, errors = _relay().lookup.observe(
        claims.key, query.observables, claims.options, budget
    )
    return _answer(bundle.json(),
                   [*query.warnings, *claims.warnings, *errors])


@bp.post("/refer/observables")
def refer() -> Response:
    """Answer pivot links: Search for each observable, Browse per breach."""
    query = _observables()
    if not query.observables:
        return _answer([], query.warnings)
    budget = _budget()
    claims = _claims(budget)
    portal = _settings().portal_url
    found, errors = _relay().lookup.breaches(
        claims.key, query.observables, claims.options, budget
    )
    references: dict[str, dict[str, object]] = {}
    for observable, catalogs in zip(query.observables, found):
        for link in [links.search(portal, observable.type, observable.value),
                     *links.browse(portal, observable.type, catalogs or ())]:
            references.setdefault(str(link["id"]), link)
    return _answer(list(references.values()),
                   [*query.warnings, *claims.warnings, *errors])


MAX_TILE_FIELDS = 8  # a tile's body has two; more is refused unread


class TileSchema(Schema):
    """The body of `/tiles/tile`: a known tile id, nothing else."""

    class Meta:
        unknown = RAISE

    tile_id = fields.String(required=True,
                            validate=validate.OneOf(list(tiles.TILES)))


class TileDataSchema(TileSchema):
    """The body of `/tiles/tile-data`: a known tile id and period."""

    period = fields.String(required=True,
                           validate=validate.OneOf(list(tiles.PERIODS)))


def _tile_request(schema: Schema) -> dict[str, str]:
    """Validate a tile route's body; no SpyCloud call for a bad one. Its
    message names at most a few problems, so a large body from anyone
    cannot make a large answer."""
    payload = request.get_json(force=True, silent=True)
    if payload is None and request.get_data():
        raise InvalidArgumentError("The body is not JSON.")
    if isinstance(payload, dict) and len(payload) > MAX_TILE_FIELDS:
        raise InvalidArgumentError(
            f"The body has {len(payload):,} fields; a tile takes"
            f" {', '.join(schema.fields)}.")
    try:
        loaded: dict[str, str] = schema.load({} if payload is None
                                             else payload)
        return loaded
    except ValidationError as exc:
        raise InvalidArgumentError(json.dumps(exc.messages)) from None


@bp.post("/tiles")
def tile_list() -> Response:
    """List the definitions of the dashboard tiles (the body, which XDR
    may send, is ignored)."""
    _claims(_budget())
    return _answer([tiles.definition(t) for t in tiles.TILES])


@bp.post("/tiles/tile")
def tile() -> Response:
    """Describe one tile."""
    wanted = _tile_request(TileSchema())
    _claims(_budget())
    return _answer(tiles.definition(wanted["tile_id"]))


@bp.post("/tiles/tile-data")
def tile_data() -> Response:
    """Answer one tile's data for a period, from the watchlist."""
    wanted = _tile_request(TileDataSchema())
    budget = _budget()
    claims = _claims(budget)
    data, errors = _relay().dashboard.tile_data(
        claims.key, wanted["tile_id"], wanted["period"], budget)
    return _answer(data, errors)
