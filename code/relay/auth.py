"""Bearer token → allowlisted jwks_host → cached JWKS → verified claims.

The configuration token is an RS256 JWT that XDR signs per module instance
(`docs/contract.md`, "Authorization"). Nothing is fetched from a
`jwks_host` that is not on the operator's allowlist.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from . import http, metrics
from .budget import Budget
from .errors import AuthorizationError, RelayError
from .jsonio import loads
from .options import Options, parse_options
from .settings import Settings

log = logging.getLogger(__name__)

ALGORITHMS = ["RS256"]
NO_HEADER = "Authorization header is missing"
WRONG_TYPE = "Wrong authorization type"
WRONG_STRUCTURE = "Wrong JWT structure"
NO_JWKS_HOST = (
    "jwks_host is missing in JWT payload. Make sure custom_jwks_host field"
    " is present in module_type"
)
WRONG_JWKS_HOST = (
    "Wrong jwks_host in JWT payload. Make sure domain follows the"
    " visibility.<region>.cisco.com structure"
)
KID_NOT_FOUND = "kid from JWT header not found in API response"
WRONG_KEY = (
    "Failed to decode JWT with provided key. Make sure domain in"
    " custom_jwks_host corresponds to your XDR instance region."
)
WRONG_AUDIENCE = "Wrong configuration-token-audience"
EXPIRED = "Token has expired"
NOT_YET_VALID = "Token is not yet valid"
WRONG_PAYLOAD = "Wrong JWT payload structure"
BAD_CLAIMS = "Wrong JWT payload structure: exp, nbf and iat must be numbers"
# Seconds XDR's clock may be ahead of ours (iat, nbf) or behind (exp).
LEEWAY = 60
UNUSABLE_KEY = "Unauthorized"


@dataclass(frozen=True)
class Claims:
    """What a verified token tells the relay about one module instance."""

    key: str
    options: Options = Options()
    # Options whose value could not be used: the answer says so.
    warnings: tuple[RelayError, ...] = ()


# A short code per failure, for the log line (never the token itself).
REASONS = {
    NO_HEADER: "missing_header", WRONG_TYPE: "wrong_type",
    WRONG_STRUCTURE: "wrong_structure", NO_JWKS_HOST: "no_jwks_host",
    WRONG_JWKS_HOST: "jwks_host_refused", KID_NOT_FOUND: "unknown_kid",
    WRONG_KEY: "bad_signature", WRONG_AUDIENCE: "wrong_audience",
    EXPIRED: "expired", NOT_YET_VALID: "not_yet_valid",
    WRONG_PAYLOAD: "no_key", UNUSABLE_KEY: "unusable_key",
    BAD_CLAIMS: "bad_claims",
}


def reason_code(error: AuthorizationError) -> str:
    """Name why a token was refused; SpyCloud's own refusals of the key
    are `spycloud_refused`."""
    if error.reason:
        return error.reason
    reason = error.message.removeprefix("Authorization failed: ")
    return REASONS.get(reason, "spycloud_refused")


def _refused(text: str, reason: str) -> AuthorizationError:
    """An AuthorizationError whose log reason is more precise than its text."""
    error = AuthorizationError(text)
    error.reason = reason
    return error


@dataclass
class _Host:
    """What is known of one host's JWKS."""

    keys: Mapping[str, jwt.PyJWK]
    fetched_at: float | None  # last successful fetch
    tried_at: float  # last fetch, successful or not
    failure: str | None = None  # log reason of the last failed fetch
    said_stale: bool = False  # the log said the keys are served stale


class JwksCache:
    """Signing keys per allowlisted host, cached with a bounded lifetime.

    A host is fetched at most once per refresh interval, successful or not:
    when its keys expire (or a token names an unknown kid) and the host
    cannot be reached, the keys already fetched stay usable for *stale_ttl*
    seconds (said once in the log), and the next fetch waits for the next
    interval. Waiting for another request's fetch of the same host ends by
    the request's budget.
    """

    TIMEOUT = (3.05, 5.0)  # connect, read: seconds
    MAX_BYTES = 1_048_576  # a JWKS of a few keys is a few KB

    def __init__(
        self,
        client: http.Client,
        url_template: str,
        ttl: float = 600.0,
        refresh_interval: float = 30.0,
        stale_ttl: float = 86_400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._url_template = url_template
        self._ttl = ttl
        self._refresh_interval = refresh_interval
        self._stale_ttl = stale_ttl
        self._clock = clock
        self._hosts: dict[str, _Host] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def key(
        self, host: str, kid: str | None, budget: Budget | None = None
    ) -> jwt.PyJWK:
        """Return the key *kid* of *host*, refreshing once if it is unknown."""
        lock = self._lock(host)
        wait = budget.remaining() if budget else max(self.TIMEOUT)
        if not lock.acquire(timeout=wait):
            raise _refused(WRONG_JWKS_HOST, "jwks_wait_timeout")
        try:
            entry = self._current(host, kid, budget)
        finally:
            lock.release()
        age = self._clock() - entry.fetched_at \
            if entry.fetched_at is not None else None
        if kid is not None and kid in entry.keys and age is not None \
                and age < max(self._ttl, self._stale_ttl):
            if age >= self._ttl and not entry.said_stale:
                entry.said_stale = True
                log.warning("JWKS of %s cannot be fetched; keys fetched %d s"
                            " ago stay usable for up to %d s", host, age,
                            self._stale_ttl)
            return entry.keys[kid]
        if entry.failure is not None:
            raise _refused(WRONG_JWKS_HOST, entry.failure)
        raise AuthorizationError(KID_NOT_FOUND)

    def _current(self, host: str, kid: str | None,
                 budget: Budget | None) -> _Host:
        """Return what is known of *host*, fetched again if its keys are
        old or lack *kid*, at most once per refresh interval."""
        now = self._clock()
        entry = self._hosts.get(host)
        if entry is not None:
            fresh = entry.fetched_at is not None \
                and now - entry.fetched_at < self._ttl
            if (fresh and kid in entry.keys) \
                    or now - entry.tried_at < self._refresh_interval:
                return entry
        fetched = self._fetch(host, budget)
        if isinstance(fetched, str):  # failed: keep what was known
            if entry is None:
                entry = _Host({}, None, now)
            entry.tried_at, entry.failure = now, fetched
        else:
            entry = _Host(fetched, now, now)
        self._hosts[host] = entry
        return entry

    def _lock(self, host: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(host, threading.Lock())

    def _fetch(self, host: str,
               budget: Budget | None) -> Mapping[str, jwt.PyJWK] | str:
        """Return *host*'s keys by kid, or the log reason of a failure."""
        url = self._url_template.format(jwks_host=host)
        left = budget.remaining() if budget else max(self.TIMEOUT)
        metrics.JWKS_FETCHES.inc()
        try:
            # The whole fetch ends by the budget, a trickled body too.
            reply = self._client.get(
                url, {"Accept": "application/json"}, timeout=self.TIMEOUT,
                within=left, max_bytes=self.MAX_BYTES)
            if reply.status != 200:
                raise ValueError(f"status {reply.status}")
            keys = jwt.PyJWKSet.from_dict(loads(reply.body)).keys
        except (http.OutOfTime, http.TimedOut, http.Unreachable) as exc:
            log.warning("JWKS of %s unreachable: %s", host,
                        type(exc).__name__)
            return "jwks_host_unreachable"
        except (http.HttpError, ValueError, jwt.PyJWTError) as exc:
            log.warning("JWKS of %s unusable: %s", host, type(exc).__name__)
            return "jwks_unusable"
        return {k.key_id: k for k in keys if k.key_id}


class Authorizer:
    """Verifies configuration tokens as the operator's settings say: the
    allowlisted JWKS hosts, the pinned audience (or each request's own
    URL) and the most entities a module may ask for."""

    def __init__(self, settings: Settings, jwks: JwksCache) -> None:
        self.jwks = jwks
        self._allowed = settings.allowed_jwks_hosts
        self._audience = settings.jwt_audience
        self._max_entities = settings.max_entities_limit

    def authorize(self, authorization: str | None, root_url: str,
                  budget: Budget | None = None) -> Claims:
        """Verify the token of an `Authorization` header sent to
        *root_url* (the audience unless one is pinned); the JWKS fetch, if
        any, ends by *budget*."""
        return authorize(authorization,
                         self._audience or root_url.rstrip("/"),
                         self._allowed, self.jwks, budget,
                         self._max_entities)


def authorize(
    authorization: str | None,
    audience: str,
    allowed_hosts: frozenset[str],
    jwks: JwksCache,
    budget: Budget | None = None,
    max_entities_limit: int = 1000,
) -> Claims:
    """Verify the configuration token and return its claims; the entity
    limit is clamped to the operator's *max_entities_limit*."""
    token = _bearer(authorization)
    try:
        # Header and claims read in one pass (each pass checks every
        # character of the token).
        read = jwt.decode_complete(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AuthorizationError(WRONG_STRUCTURE) from None
    header, unverified = read["header"], read["payload"]
    host = unverified.get("jwks_host")
    if not isinstance(host, str) or not host:
        raise AuthorizationError(NO_JWKS_HOST)
    host = host.strip().lower()
    if host not in allowed_hosts:
        raise AuthorizationError(WRONG_JWKS_HOST)
    if header.get("alg") not in ALGORITHMS:
        raise AuthorizationError(WRONG_KEY)
    key = jwks.key(host, header.get("kid"), budget)
    claims = _verify(token, key, audience)
    options, warnings = parse_options(claims, max_entities_limit)
    return Claims(key=_api_key(claims), options=options, warnings=warnings)


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthorizationError(NO_HEADER)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthorizationError(WRONG_TYPE)
    return token.strip()


# PyJWT's refusals → the text the analyst reads, most specific first:
# InvalidSignatureError is a DecodeError. The signature is checked before
# the claims, and the token's structure was decoded already: any other
# DecodeError is a claim of the wrong type (PyJWT raises one for a
# non-numeric exp or nbf). Anything else is a signature failure.
REFUSALS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], str],
                ...] = (
    (jwt.InvalidSignatureError, WRONG_KEY),
    ((jwt.InvalidIssuedAtError, jwt.DecodeError), BAD_CLAIMS),
    (jwt.ExpiredSignatureError, EXPIRED),
    (jwt.ImmatureSignatureError, NOT_YET_VALID),
    ((jwt.InvalidAudienceError, jwt.MissingRequiredClaimError),
     WRONG_AUDIENCE),
)


def _verify(token: str, key: jwt.PyJWK, audience: str) -> dict[str, Any]:
    try:
        return jwt.decode(
            token, key=key, algorithms=ALGORITHMS, audience=audience,
            leeway=LEEWAY,
        )
    except jwt.PyJWTError as error:
        text = next((text for kinds, text in REFUSALS
                     if isinstance(error, kinds)), WRONG_KEY)
        raise AuthorizationError(text) from None


def _api_key(claims: Mapping[str, Any]) -> str:
    key = claims.get("key")
    if not isinstance(key, str) or not key:
        raise AuthorizationError(WRONG_PAYLOAD)
    # requests sends headers as Latin-1; a key it cannot send, or one with
    # spaces or control characters, can never be accepted by SpyCloud.
    try:
        key.encode("latin-1")
    except UnicodeEncodeError:
        raise AuthorizationError(UNUSABLE_KEY) from None
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        raise AuthorizationError(UNUSABLE_KEY)
    return key
