"""HTTP policy for every call to SpyCloud: one call, `Transport.get_json`.

It owns the `requests.Session` (a keep-alive pool), sets the API key and
User-Agent on every call, caps each key's calls in flight, bounds every call
by a connect and read timeout and by the request's `Budget`, retries what is
worth retrying, and turns every failure into a `RelayError` as the table
"SpyCloud errors" of `docs/contract.md` says. It knows no SpyCloud endpoint.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
import stamina
from requests.structures import CaseInsensitiveDict
from stamina.instrumentation import RetryDetails

from . import metrics
from .budget import Budget, out_of_time
from .concurrency import Expired, deadline
from .connections import Adapter
from .digest import key_digest
from .errors import (
    AuthorizationError, RelayError, RetryableError, SpyCloudError,
)
from .jsonio import loads
from .limits import KeyLimits, Limits
from .settings import Settings
from .version import VERSION

log = logging.getLogger(__name__)

USER_AGENT = f"tr-05-spycloud-employee-ato-prevention-relay/{VERSION}"
# The endpoint and request id of the call a greenlet is making, for the
# retry hook (stamina calls it in that greenlet).
CALL: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar("call")
RETRY_AFTER_MAX = 10.0  # seconds; a longer Retry-After is clamped
# Answers decoded (and parsed) at once per process: taken once the body is
# read, never across the network. Decoding is CPU work, so more would not
# be faster; fewer decoded pages alive at once keep a worker's memory to
# what its answers hold, not what SpyCloud sends.
PARSE_SLOTS = 2
CHUNK = 65_536  # bytes read at a time from a SpyCloud answer

NOT_FOUND = "The Spycloud not found."
TOO_MANY = "Too many requests have been made to Spycloud. Please, try again later."
QUOTA = (
    "The SpyCloud API quota of this key is used up."
    " Please, try again when SpyCloud has renewed it."
)
# Statuses retried with backoff, and the error reported when retries run out.
TRANSIENT = {
    500: ("internal error", "The Spycloud internal error."),
    502: ("unknown", "SpyCloud answered 502 Bad Gateway."),
    503: ("unknown", "SpyCloud answered 503 Service Unavailable."),
    504: ("unknown", "SpyCloud answered 504 Gateway Timeout."),
}
NOT_JSON = "SpyCloud answered with a body that is not valid JSON."
TIMED_OUT = "SpyCloud did not answer in time."
NO_CONNECTION = "The relay could not connect to SpyCloud."
TOO_LARGE = "SpyCloud answered with a body larger than {cap:,} bytes."


@dataclass(frozen=True)
class Reply:
    """One SpyCloud answer, its body read whole."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport:
    """GETs JSON from SpyCloud with one customer's key at a time."""

    def __init__(self, settings: Settings,
                 limits: Limits | None = None) -> None:
        self._settings = settings
        self._base = settings.spycloud_api_url
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        # Per process by default; shared across replicas with Redis.
        self.limits = limits or KeyLimits(settings.max_concurrency)
        self._parsing = threading.BoundedSemaphore(PARSE_SLOTS)
        # requests' adapter (its keep-alive pool) without a Session: a
        # Session's cookie, hook and redirect handling cost a third of each
        # call's CPU, and SpyCloud calls need none of it. It keeps one idle
        # connection per connection the worker serves at most, and checks
        # one before reuse without yielding (see `connections`).
        self._adapter = Adapter(
            pool_connections=4, pool_maxsize=settings.worker_connections)
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        # What a Session would read from the environment on every call, read
        # once: proxies (HTTPS_PROXY, NO_PROXY) and the CA bundle of a
        # TLS-inspecting proxy (REQUESTS_CA_BUNDLE, else SSL_CERT_FILE).
        self._proxies = requests.utils.get_environ_proxies(self._base)
        self._verify: str | bool = (settings.ca_bundle
                                    or settings.ssl_cert_file or True)

    def get_json(
        self,
        key: str,
        path: str,
        budget: Budget,
        params: dict[str, str] | None = None,
        parse: Callable[[Any], Any] | None = None,
        endpoint: str = "-",
    ) -> Any:
        """GET *path* (relative to the API URL) and return its JSON, or None
        for a 400 (an identifier SpyCloud will not search); retry transient
        failures inside the budget; raise a `RelayError` otherwise.

        *parse*, if given, turns the JSON into what is returned while the
        answer holds a parse slot, so the raw JSON never outlives it.
        *endpoint* names the call in logs and metrics (never the value).
        A final failure is logged once, at WARNING; retries at INFO.
        """
        settings = self._settings
        attempts = 0

        def backoff(exc: Exception) -> bool | float:
            decision = retry_wait(exc, budget.remaining(),
                                  settings.retry_wait_max)
            if decision is not False:
                metrics.SPYCLOUD_CALLS.labels(endpoint, "retried").inc()
            return decision

        if budget.remaining() <= 0:
            raise out_of_time(budget)
        digest = key_digest(key)
        call = CALL.set((endpoint, budget.request_id))
        try:
            for attempt in stamina.retry_context(
                on=backoff,
                attempts=settings.retry_attempts,
                timeout=budget.remaining(),
                wait_initial=settings.retry_wait_initial,
                wait_max=settings.retry_wait_max,
                wait_jitter=settings.retry_wait_initial,
            ):
                with attempt:
                    attempts += 1
                    answer = self._once(key, digest, path, params, budget,
                                        parse)
                    metrics.SPYCLOUD_CALLS.labels(endpoint, "ok").inc()
                    return answer
        except RelayError as error:
            kind = getattr(error, "kind", "error")
            metrics.SPYCLOUD_CALLS.labels(
                endpoint, kind if kind in ("throttled", "quota") else "error"
            ).inc()
            log.warning("SpyCloud call failed", extra={"fields": {
                "kind": kind, "status": getattr(error, "status", None) or "-",
                "endpoint": endpoint, "attempts": attempts,
                "request_id": budget.request_id}})
            raise
        finally:
            CALL.reset(call)
        raise AssertionError("unreachable: stamina re-raises")  # pragma: no cover

    def _once(
        self,
        key: str,
        digest: str,
        path: str,
        params: dict[str, str] | None,
        budget: Budget,
        parse: Callable[[Any], Any] | None,
    ) -> Any:
        """Make one attempt: a slot of the key's cap from sending until the
        body is read, then a parse slot for decoding and parsing only.

        Every wait ends by the budget: the slots' waits take it as their
        timeout, and a deadline scope interrupts the network I/O (a
        connect, a stalled or trickling body) when it runs out.
        """
        if not self.limits.acquire(digest, budget.remaining()):
            raise out_of_time(budget)
        try:
            left = budget.remaining()
            if left <= 0:
                raise out_of_time(budget)
            budget.count_call()
            reply = self._exchange(key, path, params, budget, left)
        finally:
            self.limits.release(digest)
        if not self._parsing.acquire(timeout=budget.remaining()):
            raise out_of_time(budget)
        try:
            payload = answer(reply)
            del reply
            return payload if parse is None or payload is None \
                else parse(payload)
        finally:
            self._parsing.release()

    def _exchange(
        self,
        key: str,
        path: str,
        params: dict[str, str] | None,
        budget: Budget,
        left: float,
    ) -> Reply:
        """Send the GET and read the whole answer by the deadline."""
        # Built directly: `PreparedRequest.prepare` parses the URL again and
        # consults an empty cookie jar on every call (40 µs of each call's
        # 0.7 ms). The API URL was checked at start-up, endpoints quote
        # their paths, and `auth` refused keys with whitespace or controls.
        request = requests.PreparedRequest()
        request.method = "GET"
        request.url = self._base + path + (
            "?" + urlencode(params) if params else "")
        request.headers = CaseInsensitiveDict(
            {**self._headers, "X-API-Key": key})
        try:
            with deadline(left):
                return self._send(request, left)
        except Expired:
            # The budget ran out during the exchange: no time to retry.
            raise SpyCloudError(TIMED_OUT, kind="timeout") from None

    def _send(self, request: requests.PreparedRequest, left: float) -> Reply:
        """Send *request* and read its answer whole, under the caps."""
        try:
            response = self._adapter.send(
                request,
                timeout=(min(self._timeout[0], left),
                         min(self._timeout[1], left)),
                proxies=self._proxies,
                verify=self._verify,
                stream=True,  # read below, in chunks, under the caps
            )
            try:
                return Reply(response.status_code, response.headers,
                             self._read(response))
            finally:
                response.close()
        except requests.exceptions.SSLError as exc:
            raise SpyCloudError(
                f"Unable to verify SSL certificate: {_reason(exc)}",
                kind="tls") from exc
        except requests.Timeout as exc:
            raise RetryableError(TIMED_OUT, kind="timeout") from exc
        except (requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError) as exc:
            raise RetryableError(NO_CONNECTION, kind="connection") from exc
        except requests.RequestException as exc:
            raise SpyCloudError(
                f"The call to SpyCloud failed: {type(exc).__name__}."
            ) from exc

    def _read(self, response: requests.Response) -> bytes:
        """Read the body a chunk at a time, refusing one over the cap."""
        cap = self._settings.spycloud_max_body_bytes
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            if size > cap:
                raise SpyCloudError(TOO_LARGE.format(cap=cap),
                                    kind="too_large",
                                    status=response.status_code)
            chunks.append(chunk)
        return b"".join(chunks)


def log_retry(details: RetryDetails) -> None:
    """stamina's on-retry hook: one INFO line per retry of a SpyCloud call,
    naming the endpoint and request the retrying greenlet is serving."""
    endpoint, request_id = CALL.get(("-", "-"))
    cause = details.caused_by
    log.info("SpyCloud call retried", extra={"fields": {
        "kind": getattr(cause, "kind", type(cause).__name__),
        "status": getattr(cause, "status", None) or "-",
        "endpoint": endpoint, "attempt": details.retry_num,
        "wait": f"{details.wait_for:.2f}", "request_id": request_id}})


def retry_wait(
    exc: Exception, remaining: float, wait_max: float
) -> bool | float:
    """Decide a retry: False (give up), True (exponential backoff) or the
    seconds SpyCloud asked for in `Retry-After`, clamped."""
    if not isinstance(exc, RetryableError):
        return False
    wait = exc.retry_after
    if wait is not None:
        wait = min(wait, RETRY_AFTER_MAX)
    # Never sleep past the budget: better to report the failure in time.
    if remaining <= (wait if wait is not None else wait_max) + 0.1:
        return False
    return True if wait is None else wait


def answer(response: Reply) -> Any:
    """Turn one SpyCloud response into JSON, None (400) or an error."""
    status = response.status
    if status == 200:
        try:
            return loads(response.body)
        except ValueError:
            raise SpyCloudError(NOT_JSON, kind="bad_body",
                                status=200) from None
    if status == 400:
        return None
    if status in (401, 403):
        refused = AuthorizationError(_auth_reason(response))
        refused.status = status
        raise refused
    if status == 404:
        raise SpyCloudError(NOT_FOUND, code="not found", kind="not_found",
                            status=404)
    if status == 429:
        raise _throttled(response)
    if status in TRANSIENT:
        code, message = TRANSIENT[status]
        raise RetryableError(message, code=code, kind="server_error",
                             status=status)
    raise SpyCloudError(f"SpyCloud answered with unexpected status {status}.",
                        kind="unexpected_status", status=status)


def _throttled(response: Reply) -> SpyCloudError:
    """Tell a spent quota (final) from throttling (retried)."""
    kind = response.headers.get("x-amzn-ErrorType", "")
    if kind.startswith("LimitExceededException"):
        return SpyCloudError(QUOTA, code="too many requests", kind="quota",
                             status=429)
    return RetryableError(
        TOO_MANY, code="too many requests", kind="throttled", status=429,
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )


def _auth_reason(response: Reply) -> str:
    header = response.headers.get("SpyCloud-Error", "").strip()
    if header:
        return header
    try:
        message = loads(response.body).get("message")
    except (ValueError, AttributeError):
        message = None
    if isinstance(message, str) and message.strip():
        return message.strip()[:200]
    return "Unauthorized"


def _retry_after(value: str | None) -> float | None:
    """Read a `Retry-After` of seconds; dates and garbage are ignored."""
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def _reason(exc: BaseException) -> str:
    # The innermost cause names the certificate problem, not the URL.
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return str(exc) or type(exc).__name__
