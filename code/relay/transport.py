"""HTTP policy for every call to SpyCloud: one call, `Transport.get_json`.

It sets the API key and User-Agent on every call, caps each key's calls in
flight, bounds every call by a connect and read timeout and by the
request's budget, retries what is worth retrying, and turns every failure
into a `RelayError` as the table "SpyCloud errors" of `docs/contract.md`
says. The exchange itself is the HTTP client's (`http.py`); this module
knows no SpyCloud endpoint.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import stamina

from . import http, logs, metrics
from .budget import out_of_time
from .context import Context
from .errors import (
    AuthorizationError, RelayError, RetryableError, SpyCloudError,
)
from .jsonio import loads
from .limits import Kept, Limits
from .settings import Settings
from .version import VERSION

log = logging.getLogger(__name__)

USER_AGENT = f"tr-05-spycloud-employee-ato-prevention-relay/{VERSION}"
RETRY_AFTER_MAX = 10.0  # seconds; a longer Retry-After is clamped
# Answers decoded (and parsed) at once per process: taken once the body is
# read, never across the network. Decoding is CPU work, so more would not
# be faster; fewer decoded pages alive at once keep a worker's memory to
# what its answers hold, not what SpyCloud sends.
PARSE_SLOTS = 2

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


class Transport:
    """GETs JSON from SpyCloud with one customer's key at a time."""

    def __init__(self, settings: Settings, client: http.Client,
                 limits: Limits) -> None:
        self._settings = settings
        self._base = settings.spycloud_api_url
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._client = client
        # Per process, or shared across replicas with Redis.
        self.limits = limits
        self._parsing = threading.BoundedSemaphore(PARSE_SLOTS)
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}

    def get_json(
        self,
        ctx: Context,
        path: str,
        params: dict[str, str] | None = None,
        parse: Callable[[Any], Any] | None = None,
        endpoint: str = "-",
        kept: Kept | None = None,
    ) -> Any:
        """GET *path* (relative to the API URL) with the request's key and
        return its JSON, or None for a 400 (an identifier SpyCloud will not
        search); retry transient failures inside the budget; raise a
        `RelayError` otherwise.

        *parse*, if given, turns the JSON into what is returned while the
        answer holds a parse slot, so the raw JSON never outlives it.
        *endpoint* names the call in logs and metrics (never the value).
        *kept*, if given, lends its slot of the key's cap to the first
        attempt and keeps the slot of the one that is answered.
        A final failure is logged once, at WARNING; retries at INFO.
        """
        settings = self._settings
        attempts = 0

        def backoff(exc: Exception) -> bool | float:
            decision = retry_wait(exc, ctx.remaining(),
                                  settings.retry_wait_max)
            if decision is not False:
                metrics.SPYCLOUD_CALLS.labels(endpoint, "retried").inc()
            return decision

        if ctx.remaining() <= 0:
            raise out_of_time(ctx.budget)
        call = logs.CALL.set((endpoint, ctx.request_id))
        try:
            for attempt in stamina.retry_context(
                on=backoff,
                attempts=settings.retry_attempts,
                timeout=ctx.remaining(),
                wait_initial=settings.retry_wait_initial,
                wait_max=settings.retry_wait_max,
                wait_jitter=settings.retry_wait_initial,
            ):
                with attempt:
                    attempts += 1
                    answer = self._once(ctx, path, params, parse, kept)
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
                "request_id": ctx.request_id}})
            raise
        finally:
            logs.CALL.reset(call)
        raise AssertionError("unreachable: stamina re-raises")  # pragma: no cover

    def _once(
        self,
        ctx: Context,
        path: str,
        params: dict[str, str] | None,
        parse: Callable[[Any], Any] | None,
        kept: Kept | None,
    ) -> Any:
        """Make one attempt: a slot of the key's cap from sending until the
        body is read (or, *kept*, until the caller's next call: the slot it
        kept is used first), then a parse slot for decoding and parsing
        only.

        Every wait ends by the budget: the slots' waits take it as their
        timeout, and the exchange (a connect, a stalled or trickling body)
        is interrupted when it runs out.
        """
        slot = kept.take() if kept is not None else None
        if slot is None:
            slot = self.limits.acquire(ctx.digest, ctx.remaining())
        if slot is None:
            raise out_of_time(ctx.budget)
        answered = False
        try:
            left = ctx.remaining()
            if left <= 0:
                raise out_of_time(ctx.budget)
            ctx.calls.add()
            reply = self._exchange(ctx.key, path, params, left)
            answered = True
        finally:
            if answered and kept is not None:
                kept.keep(slot, self.limits)
            else:
                self.limits.release(slot)
        if not self._parsing.acquire(timeout=ctx.remaining()):
            raise out_of_time(ctx.budget)
        try:
            payload = answer(reply)
            del reply
            return payload if parse is None or payload is None \
                else parse(payload)
        finally:
            self._parsing.release()

    def _exchange(self, key: str, path: str, params: dict[str, str] | None,
                  left: float) -> http.Reply:
        """Send the GET and read the whole answer within *left* seconds."""
        try:
            return self._client.get(
                self._base + path + ("?" + urlencode(params) if params
                                     else ""),
                {**self._headers, "X-API-Key": key},
                timeout=self._timeout, within=left,
                max_bytes=self._settings.spycloud_max_body_bytes)
        except http.OutOfTime:
            # The budget ran out during the exchange: no time to retry.
            raise SpyCloudError(TIMED_OUT, kind="timeout") from None
        except http.Unverified as exc:
            raise SpyCloudError(
                f"Unable to verify SSL certificate: {exc.reason}",
                kind="tls") from exc
        except http.TooLarge as exc:
            raise SpyCloudError(TOO_LARGE.format(cap=exc.cap),
                                kind="too_large", status=exc.status) from exc
        except http.TimedOut as exc:
            raise RetryableError(TIMED_OUT, kind="timeout") from exc
        except http.Unreachable as exc:
            raise RetryableError(NO_CONNECTION, kind="connection") from exc
        except http.HttpError as exc:
            raise SpyCloudError(
                f"The call to SpyCloud failed: {exc}.") from exc


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


def answer(response: http.Reply) -> Any:
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


def _throttled(response: http.Reply) -> SpyCloudError:
    """Tell a spent quota (final) from throttling (retried)."""
    kind = response.headers.get("x-amzn-ErrorType", "")
    if kind.startswith("LimitExceededException"):
        return SpyCloudError(QUOTA, code="too many requests", kind="quota",
                             status=429)
    return RetryableError(
        TOO_MANY, code="too many requests", kind="throttled", status=429,
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )


def _auth_reason(response: http.Reply) -> str:
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
