"""The SpyCloud client: the only code in the relay that talks to SpyCloud.

It owns one `requests.Session` (a keep-alive pool sized to the concurrency
cap), sets the API key and User-Agent on every call, bounds every call by a
connect and read timeout and by the request's `Budget`, retries what is
worth retrying, and turns every failure into a `RelayError` per the
contract's table "SpyCloud errors → relay errors".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
import stamina
from cachetools import LRUCache
from requests.adapters import HTTPAdapter

from .budget import Budget
from .catalog_cache import CatalogCache, key_hash
from .errors import AuthorizationError, RelayError, SpyCloudError, warning
from .jsonio import loads
from .records import (
    Catalog, PayloadError, Record, parse_catalog, parse_page, parse_record,
)
from .settings import Settings
from .version import VERSION

log = logging.getLogger(__name__)

USER_AGENT = f"tr-05-spycloud-employee-ato-prevention-relay/{VERSION}"
HEALTH_PATH = "watchlist/example.org"
CATALOG_BATCH = 10  # ids per catalog call (spycloud-api.md)
RETRY_AFTER_MAX = 10.0  # seconds; a longer Retry-After is clamped

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
OUT_OF_TIME = (
    "The relay's time budget of {seconds:g} s ran out before SpyCloud answered."
)


class _Transient(Exception):
    """A failure worth retrying; `error` is reported if retries run out."""

    def __init__(self, error: RelayError, retry_after: float | None = None):
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


@dataclass(frozen=True)
class Breaches:
    """The breach records of one email, and what could not be read."""

    records: tuple[Record, ...] = ()
    warnings: tuple[RelayError, ...] = ()


@dataclass
class Catalogs:
    """Catalogs by id, ids SpyCloud did not return, and failed batches."""

    found: dict[int, Catalog] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    errors: list[RelayError] = field(default_factory=list)


class SpyCloudClient:
    """Calls SpyCloud's enterprise-v2 API with one customer's key at a time."""

    def __init__(
        self, settings: Settings, session: requests.Session | None = None
    ) -> None:
        self._settings = settings
        self._base = settings.spycloud_api_url
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._session = session or requests.Session()
        # Threads for concurrent calls live as long as the client, so a
        # request does not pay for starting them; the per-key gates, not
        # the pool, bound what reaches SpyCloud. Each thread can keep one
        # connection alive.
        workers = 4 * settings.max_concurrency
        self._pool = ThreadPoolExecutor(workers, "spycloud")
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=workers)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update(
            {"User-Agent": USER_AGENT, "Accept": "application/json"}
        )
        # Proxy variables (HTTPS_PROXY, NO_PROXY) are read once here rather
        # than scanned from the environment on every call.
        self._session.proxies.update(
            requests.utils.get_environ_proxies(self._base)
        )
        self._session.trust_env = False
        self._gates: LRUCache = LRUCache(maxsize=1024)
        self._gates_lock = threading.Lock()
        self._cache = CatalogCache(
            settings.catalog_cache_ttl, settings.catalog_cache_size
        )

    def ping(self, key: str, budget: Budget) -> None:
        """Make one authenticated call, as the health check does."""
        self._get(key, HEALTH_PATH, budget)

    def breaches_many(
        self, key: str, emails: Sequence[str], budget: Budget
    ) -> list[Breaches | RelayError]:
        """Read the records of several emails concurrently, in order."""
        return list(self._pool.map(
            lambda email: self._breaches_or_error(key, email, budget), emails
        ))

    def _breaches_or_error(
        self, key: str, email: str, budget: Budget
    ) -> Breaches | RelayError:
        try:
            return self.breaches(key, email, budget)
        except RelayError as error:
            return error
        except Exception:  # a bug must not lose the other emails' answers
            log.exception("unexpected failure while reading breaches")
            return RelayError("An unexpected error occurred.")

    def breaches(self, key: str, email: str, budget: Budget) -> Breaches:
        """Read every page of an email's breach records, up to the page cap."""
        path = "breach/data/emails/" + quote(email.lower(), safe="@")
        records: list[Record] = []
        rejected = 0
        cursor = ""
        seen: set[str] = set()
        for _ in range(self._settings.max_pages):
            payload = self._get(
                key, path, budget, {"cursor": cursor} if cursor else None
            )
            if payload is None:  # 400: an identifier SpyCloud won't search
                break
            page = self._page(payload)
            for raw in page.results:
                try:
                    records.append(parse_record(raw))
                except ValueError as exc:
                    rejected += 1
                    log.warning("unusable record skipped: %s", exc)
            cursor = page.cursor
            if not cursor:
                break
            if cursor in seen:
                log.warning("SpyCloud repeated a cursor; paging stopped")
                break
            seen.add(cursor)
        else:
            return Breaches(tuple(records), _warnings(email, rejected) + (
                warning(
                    "too many results",
                    f"SpyCloud holds more records for {email} than the relay"
                    f" reads ({self._settings.max_pages} pages); older records"
                    " were not read.",
                ),
            ))
        return Breaches(tuple(records), _warnings(email, rejected))

    def catalogs(
        self, key: str, ids: Sequence[int], budget: Budget
    ) -> Catalogs:
        """Return the catalogs of *ids*, from the cache or in batches of 10."""
        owner = key_hash(key)
        found, missing, todo = self._cache.lookup(owner, dict.fromkeys(ids))
        result = Catalogs(found, missing)
        batches = [
            todo[i:i + CATALOG_BATCH] for i in range(0, len(todo), CATALOG_BATCH)
        ]
        answers = self._pool.map(
            lambda batch: self._catalog_batch(key, batch, budget), batches
        )
        for batch, answer in zip(batches, answers):
            if isinstance(answer, RelayError):
                result.errors.append(answer)
                continue
            gone = [i for i in batch if i not in answer]
            result.found.update(answer)
            result.missing.extend(gone)
            self._cache.store(owner, answer.values(), gone)
        return result

    def _catalog_batch(
        self, key: str, ids: Sequence[int], budget: Budget
    ) -> dict[int, Catalog] | RelayError:
        path = "breach/catalog/" + ",".join(str(i) for i in ids)
        try:
            payload = self._get(key, path, budget)
            page = self._page(payload) if payload is not None else None
        except RelayError as error:
            return error
        found: dict[int, Catalog] = {}
        for raw in page.results if page else ():
            try:
                catalog = parse_catalog(raw)
            except ValueError as exc:
                log.warning("unusable catalog skipped: %s", exc)
                continue
            if catalog.id in ids:
                found[catalog.id] = catalog
        return found

    @staticmethod
    def _page(payload: Any):
        try:
            return parse_page(payload)
        except PayloadError as exc:
            raise SpyCloudError(
                f"SpyCloud answered with an unexpected body: {exc}."
            ) from exc

    def _get(
        self,
        key: str,
        path: str,
        budget: Budget,
        params: dict[str, str] | None = None,
    ) -> Any:
        """GET one path, retrying transient failures inside the budget."""
        settings = self._settings

        def backoff(exc: Exception) -> bool | float:
            return retry_wait(exc, budget.remaining(), settings.retry_wait_max)

        if budget.remaining() <= 0:
            raise SpyCloudError(OUT_OF_TIME.format(seconds=budget.seconds))
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
                    return self._once(key, self._base + path, params, budget)
        except _Transient as exc:
            raise exc.error from exc
        raise AssertionError("unreachable: stamina re-raises")  # pragma: no cover

    def _gate(self, key: str) -> threading.BoundedSemaphore:
        """Return the semaphore that caps concurrent calls for one key."""
        owner = key_hash(key)
        with self._gates_lock:
            gate = self._gates.get(owner)
            if gate is None:
                gate = threading.BoundedSemaphore(
                    self._settings.max_concurrency
                )
                self._gates[owner] = gate
            return gate

    def _once(
        self,
        key: str,
        url: str,
        params: dict[str, str] | None,
        budget: Budget,
    ) -> Any:
        gate = self._gate(key)
        if not gate.acquire(timeout=budget.remaining()):
            raise SpyCloudError(OUT_OF_TIME.format(seconds=budget.seconds))
        try:
            left = budget.remaining()
            if left <= 0:
                raise SpyCloudError(OUT_OF_TIME.format(seconds=budget.seconds))
            budget.count_call()
            response = self._session.get(
                url,
                params=params,
                headers={"X-API-Key": key},
                timeout=(min(self._timeout[0], left),
                         min(self._timeout[1], left)),
                allow_redirects=False,
            )
            return _answer(response)
        except requests.exceptions.SSLError as exc:
            raise SpyCloudError(
                f"Unable to verify SSL certificate: {_reason(exc)}"
            ) from exc
        except requests.Timeout as exc:
            raise _Transient(SpyCloudError(TIMED_OUT)) from exc
        except (requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError) as exc:
            raise _Transient(SpyCloudError(NO_CONNECTION)) from exc
        except requests.RequestException as exc:
            raise SpyCloudError(
                f"The call to SpyCloud failed: {type(exc).__name__}."
            ) from exc
        finally:
            gate.release()


def retry_wait(
    exc: Exception, remaining: float, wait_max: float
) -> bool | float:
    """Decide a retry: False (give up), True (exponential backoff) or the
    seconds SpyCloud asked for in `Retry-After`, clamped."""
    if not isinstance(exc, _Transient):
        return False
    wait = exc.retry_after
    if wait is not None:
        wait = min(wait, RETRY_AFTER_MAX)
    # Never sleep past the budget: better to report the failure in time.
    if remaining <= (wait if wait is not None else wait_max) + 0.1:
        return False
    return True if wait is None else wait


def _answer(response: requests.Response) -> Any:
    """Turn one SpyCloud response into JSON, None (400) or an error."""
    status = response.status_code
    if status == 200:
        try:
            return loads(response.content)
        except ValueError:
            raise SpyCloudError(NOT_JSON) from None
    if status == 400:
        return None
    if status in (401, 403):
        raise AuthorizationError(_auth_reason(response))
    if status == 404:
        raise SpyCloudError(NOT_FOUND, code="not found")
    if status == 429:
        raise _throttled(response)
    if status in TRANSIENT:
        code, message = TRANSIENT[status]
        raise _Transient(SpyCloudError(message, code=code))
    raise SpyCloudError(f"SpyCloud answered with unexpected status {status}.")


def _throttled(response: requests.Response) -> Exception:
    """Tell a spent quota (final) from throttling (retried)."""
    kind = response.headers.get("x-amzn-ErrorType", "")
    if kind.startswith("LimitExceededException"):
        return SpyCloudError(QUOTA, code="too many requests")
    return _Transient(
        SpyCloudError(TOO_MANY, code="too many requests"),
        _retry_after(response.headers.get("Retry-After")),
    )


def _auth_reason(response: requests.Response) -> str:
    header = response.headers.get("SpyCloud-Error", "").strip()
    if header:
        return header
    try:
        message = response.json().get("message")
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


def _reason(exc: Exception) -> str:
    # The innermost cause names the certificate problem, not the URL.
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return str(exc) or type(exc).__name__


def _warnings(email: str, rejected: int) -> tuple[RelayError, ...]:
    if not rejected:
        return ()
    return (warning(
        "invalid result",
        f"SpyCloud returned {rejected} unusable record(s) for {email};"
        " they are left out.",
    ),)
