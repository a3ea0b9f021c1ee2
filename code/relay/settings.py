"""Operator settings: every environment variable declared once, here.

Each field of `Settings` names its variable, how its text is read and
checked, and what it is for. The relay, `gunicorn.conf.py` and the
table of `docs/operating.md` (`python -m relay.settings`) all come from
this one table; a value that cannot be used stops the relay at start-up
with one line naming the variable, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

DEFAULT_JWKS_HOSTS = (
    "visibility.amp.cisco.com",
    "visibility.eu.amp.cisco.com",
    "visibility.apjc.amp.cisco.com",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
# The words of a true and a false value, in settings and module options.
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


class SettingsError(ValueError):
    """An environment variable holds a value the relay cannot use."""


# --- readers: text → value, or ValueError saying what is allowed ------------

def url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("an http:// or https:// URL")
    return text


def base_url(text: str) -> str:
    return url(text) if text.endswith("/") else url(text) + "/"


def portal(text: str) -> str:
    return url(text).rstrip("/")


def hosts(text: str) -> frozenset[str]:
    allowed = "at least one host (host or host:port, not a URL), comma-separated"
    found = frozenset(h.strip().lower() for h in text.split(",") if h.strip())
    if not found or any("/" in h or "@" in h or " " in h for h in found):
        raise ValueError(allowed)
    return found


def audience(text: str) -> str | None:
    """The URL registered in XDR, as tokens carry it: without a trailing
    slash (XDR's audience has none)."""
    if not text:
        return None
    return url(text).rstrip("/")


def template(text: str) -> str:
    if "{jwks_host}" not in text:
        raise ValueError("a URL containing {jwks_host}")
    url(text.replace("{jwks_host}", "host"))
    return text


def optional(text: str) -> str | None:
    return text or None


def boolean(text: str) -> bool:
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    raise ValueError("true or false (also yes/no, on/off, 1/0)")


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("a number of seconds above 0") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("a number of seconds above 0")
    return value


MAX_BUDGET = 300.0  # XDR gives up on a module long before this


def budget(text: str) -> float:
    allowed = f"a number of seconds above 0, at most {MAX_BUDGET:g}"
    try:
        value = seconds(text)
    except ValueError:
        raise ValueError(allowed) from None
    if value > MAX_BUDGET:
        raise ValueError(allowed)
    return value


def seconds_or_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValueError("a number of seconds, 0 or more")
    return value


def count(text: str) -> int:
    # ASCII digits only: `²` is a digit to isdigit(), and int() refuses it;
    # more than 18 digits is no count anyone means.
    if not (text.isascii() and text.isdecimal()) or len(text) > 18 \
            or int(text) < 1:
        raise ValueError("a whole number of 1 or more")
    return int(text)


def level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise ValueError("one of " + ", ".join(LOG_LEVELS))
    return text.upper()


def log_format(text: str) -> str:
    if text.lower() not in LOG_FORMATS:
        raise ValueError("one of " + ", ".join(LOG_FORMATS))
    return text.lower()


ADDRESS = re.compile(r"(?:\[[0-9a-fA-F:.]+\]|[\w.-]+):(\d{1,5})")


def address(text: str) -> str:
    match = ADDRESS.fullmatch(text)
    if not match:
        raise ValueError("HOST:PORT, e.g. 0.0.0.0:9090")
    if not 0 < int(match.group(1)) < 65536:
        raise ValueError("HOST:PORT with a port from 1 to 65535")
    return text


def redis_url(text: str) -> str | None:
    from .redis_url import target

    if not text:
        return None
    target(text)  # ValueError names the forms allowed
    return text


def ca_file(text: str) -> str | None:
    if not text:
        return None
    if not os.path.isfile(text):
        raise ValueError("the path of a readable PEM file of CA certificates")
    return text


def pem_file(text: str) -> str | None:
    if not text:
        return None
    if not os.path.isfile(text):
        raise ValueError("the path of a readable PEM file")
    return text


def optional_address(text: str) -> str | None:
    return address(text) if text else None


def var(name: str, default: Any, read: Callable[[str], Any], help: str,
        shown: str | None = None) -> Any:
    """Declare a setting: its variable, default, reader and description
    (*shown*: the default as the documentation shows it)."""
    return field(default=default, metadata={
        "env": name, "read": read, "help": help,
        "shown": shown if shown is not None else _shown(default)})


def _shown(default: Any) -> str:
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


@dataclass(frozen=True)
class Settings:
    """Everything the operator can tune."""

    spycloud_api_url: str = var(
        "SPYCLOUD_API_URL", "https://api.spycloud.io/enterprise-v2/",
        base_url, "SpyCloud's API base URL (the emulator in tests and the"
        " demo)")
    allowed_jwks_hosts: frozenset[str] = var(
        "ALLOWED_JWKS_HOSTS", frozenset(DEFAULT_JWKS_HOSTS), hosts,
        "comma-separated hosts (`host` or `host:port`) a token's `jwks_host`"
        " may name; nothing is fetched from any other",
        ",".join(DEFAULT_JWKS_HOSTS))
    jwks_url_template: str = var(
        "JWKS_URL_TEMPLATE", "https://{jwks_host}/.well-known/jwks", template,
        "where signing keys are fetched")
    jwt_audience: str | None = var(
        "JWT_AUDIENCE", None, audience,
        "pins the expected `aud` claim: the relay's URL as registered in XDR"
        " (`https://...`; a trailing slash is dropped); unset: the"
        " request's root URL")
    trust_proxy_headers: bool = var(
        "TRUST_PROXY_HEADERS", False, boolean,
        "honour `X-Forwarded-Proto`/`-Host` when computing the audience"
        " (behind a TLS-terminating proxy)")
    jwks_cache_ttl: float = var(
        "JWKS_CACHE_TTL", 600.0, seconds, "seconds a JWKS is cached per host")
    jwks_refresh_interval: float = var(
        "JWKS_REFRESH_INTERVAL", 30.0, seconds,
        "an unknown `kid` refreshes a host's JWKS once, at most once per this"
        " many seconds")
    jwks_stale_ttl: float = var(
        "JWKS_STALE_TTL", 86_400.0, seconds,
        "while a host's JWKS cannot be fetched, seconds the keys fetched"
        " before stay usable (said once in the log); a failed fetch is tried"
        " again once per `JWKS_REFRESH_INTERVAL`")
    connect_timeout: float = var(
        "SPYCLOUD_CONNECT_TIMEOUT", 3.05, seconds,
        "seconds to connect to SpyCloud")
    read_timeout: float = var(
        "SPYCLOUD_READ_TIMEOUT", 10.0, seconds,
        "seconds to wait for a SpyCloud answer")
    request_budget: float = var(
        "RELAY_REQUEST_BUDGET", 25.0, budget,
        "total seconds one request may spend, retries included (at most"
        " 300); what was obtained by then is returned with an error")
    max_pages: int = var(
        "SPYCLOUD_MAX_PAGES", 10, count,
        "pages of 1,000 records read per observable (a domain:"
        " `DOMAIN_MAX_PAGES`); more gives a warning")
    domain_max_pages: int = var(
        "DOMAIN_MAX_PAGES", 5, count,
        "pages of 1,000 records read per domain (a domain holds its"
        " employees' records and the logins stolen for its sites); more"
        " gives a warning with SpyCloud's total")
    max_concurrency: int = var(
        "SPYCLOUD_MAX_CONCURRENCY", 20, count,
        "SpyCloud calls in flight per API key, across all requests of a"
        " process (with `REDIS_URL`, of every replica); also the most one"
        " request fans out")
    retry_attempts: int = var(
        "SPYCLOUD_RETRY_ATTEMPTS", 3, count,
        "attempts per call on throttling, 500/502/503/504, timeouts and"
        " connection errors")
    retry_wait_initial: float = var(
        "SPYCLOUD_RETRY_WAIT", 0.2, seconds,
        "first backoff in seconds (doubles each time, with jitter)")
    retry_wait_max: float = var(
        "SPYCLOUD_RETRY_WAIT_MAX", 2.0, seconds,
        "longest backoff in seconds (a `Retry-After` is honoured up to 10 s)")
    catalog_cache_ttl: float = var(
        "CATALOG_CACHE_TTL", 3600.0, seconds,
        "seconds a breach catalog is cached, per API key")
    catalog_cache_size: int = var(
        "CATALOG_CACHE_SIZE", 10_000, count, "catalogs cached at most")
    max_emails_per_request: int = var(
        "MAX_EMAILS_PER_REQUEST", 100, count,
        "observables (of every type) looked up per call; the rest are"
        " skipped with a warning")
    max_entities_limit: int = var(
        "MAX_ENTITIES_LIMIT", 1000, count,
        "the most sightings per observable a module's `CTR_ENTITIES_LIMIT`"
        " may ask for; larger values are clamped")
    max_body_bytes: int = var(
        "MAX_BODY_BYTES", 1_048_576, count,
        "larger request bodies get HTTP 413")
    body_timeout: float = var(
        "BODY_TIMEOUT", 5.0, seconds,
        "seconds a request body may take to arrive (within the request's"
        " budget); a slower one gets HTTP 408 and its connection is closed")
    max_answer_sightings: int = var(
        "MAX_ANSWER_SIGHTINGS", 5000, count,
        "sightings in one answer at most (about 2 KB each with their"
        " indicators and relationships); past it each observable keeps its"
        " newest share and a warning says how many were left out")
    spycloud_max_body_bytes: int = var(
        "SPYCLOUD_MAX_BODY_BYTES", 16_777_216, count,
        "largest SpyCloud answer read (a page of 1,000 records is about"
        " 1 MB); a larger one is an error for its observable")
    records_cache_ttl: float = var(
        "RECORDS_CACHE_TTL", 300.0, seconds_or_zero,
        "seconds an observable's records are kept, so XDR's repeated"
        " questions cost no SpyCloud call; `0` turns it off")
    records_cache_size: int = var(
        "RECORDS_CACHE_SIZE", 20_000, count,
        "records kept at most by that cache (process memory only, never"
        " disk or an external store)")
    ca_bundle: str | None = var(
        "REQUESTS_CA_BUNDLE", None, ca_file,
        "a PEM file of the CAs SpyCloud's certificate is checked against"
        " (behind a TLS-inspecting proxy); unset: the bundled CAs")
    ssl_cert_file: str | None = var(
        "SSL_CERT_FILE", None, ca_file,
        "the same, read when `REQUESTS_CA_BUNDLE` is unset")
    portal_url: str = var(
        "SPYCLOUD_PORTAL_URL", "https://portal.spycloud.com", portal,
        "where refer's Search and Browse links point")
    tiles_cache_ttl: float = var(
        "TILES_CACHE_TTL", 900.0, seconds,
        "seconds one period's tile figures are kept per API key (counts and"
        " the top identities, never records; sealed in Redis); figures that"
        " met a SpyCloud failure are not kept")
    tiles_max_pages: int = var(
        "TILES_MAX_PAGES", 20, count,
        "watchlist pages (1,000 records each) read for one period's tiles;"
        " past it a warning says the figures cover the newest pages")
    log_level: str = var(
        "LOG_LEVEL", "INFO", level, "level of the relay's, gunicorn's and"
        " libraries' logs")
    log_format: str = var(
        "LOG_FORMAT", "text", log_format,
        "`text` (one line per event) or `json` (one JSON object per line,"
        " for log shippers)")
    bind: str = var(
        "BIND", "0.0.0.0:9090", address, "gunicorn's listening address")
    workers: int = var(
        "WEB_CONCURRENCY", 1, count,
        "gunicorn worker processes (see \"One process per container\")")
    worker_connections: int = var(
        "WORKER_CONNECTIONS", 10_000, count,
        "connections one worker holds at once, idle and slow ones included"
        " (each a greenlet of a few KB); more wait in the listen backlog."
        " The open-files limit is raised at start-up to match")
    metrics_bind: str | None = var(
        "METRICS_BIND", None, optional_address,
        "`HOST:PORT` of a separate Prometheus listener (unset: no metrics"
        " listener; never on the XDR-facing port)")

    redis_url: str | None = var(
        "REDIS_URL", None, redis_url,
        "a Redis shared by every worker and replica: catalog cache, tile"
        " figures and the per-key cap (never records); `redis://host:6379/0`,"
        " `rediss://` (TLS), `unix:///path`,"
        " `redis+sentinel://host:26379,host:26379/<master>[/db]`,"
        " `redis+cluster://host:6379,host:6379` (`rediss+` for TLS);"
        " `user:password@` before the hosts; unset: each process keeps its"
        " own")
    redis_ca_file: str | None = var(
        "REDIS_CA_FILE", None, ca_file,
        "a PEM file of the CAs a `rediss` server's certificate is checked"
        " against (a private CA); unset: the system's")
    redis_cert_file: str | None = var(
        "REDIS_CERT_FILE", None, pem_file,
        "a client certificate (PEM) for mutual TLS with Redis")
    redis_key_file: str | None = var(
        "REDIS_KEY_FILE", None, pem_file,
        "the key of `REDIS_CERT_FILE` (PEM)")
    redis_sentinel_password: str | None = var(
        "REDIS_SENTINEL_PASSWORD", None, optional,
        "the sentinels' own password (unset: the URL's credentials serve"
        " the sentinels too)")
    redis_timeout: float = var(
        "REDIS_TIMEOUT", 0.25, seconds,
        "seconds one Redis operation may take before the process uses its"
        " own cache and cap instead")
    redis_retry_interval: float = var(
        "REDIS_RETRY_INTERVAL", 10.0, seconds,
        "after a Redis failure, seconds of in-process fallback (one warning)"
        " before Redis is tried again")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from *env* (default: the process
        environment); raise SettingsError naming the first unusable one."""
        env = os.environ if env is None else env
        values = {}
        for spec in fields(cls):
            name = spec.metadata["env"]
            raw = env.get(name)
            if raw is None or (not raw.strip()
                               and spec.metadata["read"] is not hosts):
                continue  # unset (or blank): the default
            try:
                values[spec.name] = spec.metadata["read"](raw.strip())
            except ValueError as exc:
                raise SettingsError(
                    f"{name}={_safe(name, raw)!r} cannot be used: expected"
                    f" {exc}") from None
        settings = cls(**values)
        if settings.metrics_bind and _port(settings.metrics_bind) \
                == _port(settings.bind):
            raise SettingsError(
                f"METRICS_BIND={settings.metrics_bind!r} cannot be used:"
                f" expected another port than BIND's ({settings.bind})")
        return settings

    def describe(self) -> dict[str, object]:
        """Return every setting by variable name, for the start-up line.
        API keys arrive in tokens, never here; a password inside a URL
        (`redis://:secret@host`) is shown as `***`."""
        shown: dict[str, object] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, frozenset):
                value = ",".join(sorted(value))
            name = spec.metadata["env"]
            shown[name] = _safe(name, _shown(value)) if value is not None \
                else _shown(value)
        return shown


# Prefixes only the relay's variables use: another variable with one is
# most likely a misspelt setting.
FAMILIES = ("SPYCLOUD_", "JWKS_", "JWT_", "RELAY_", "REDIS_", "TILES_",
            "RECORDS_", "CATALOG_", "ALLOWED_JWKS")


def strangers(env: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Return the variables of *env* that look like settings but are none
    (a relay prefix, or a close spelling of one), each with the setting
    it most likely meant (or None)."""
    known = [spec.metadata["env"] for spec in fields(Settings)]
    found = []
    for name in sorted(env):
        if name in known:
            continue
        # A close spelling of about the same length (NIX_SSL_CERT_FILE is
        # another program's, not a misspelt SSL_CERT_FILE).
        close = [match for match in difflib.get_close_matches(
            name, known, n=1, cutoff=0.85) if abs(len(match) - len(name)) <= 2]
        if close or name.startswith(FAMILIES):
            meant = close or difflib.get_close_matches(name, known, n=1,
                                                       cutoff=0.6)
            found.append((name, meant[0] if meant else None))
    return found


def _port(bind: str) -> int:
    return int(bind.rpartition(":")[2])


def _safe(name: str, text: str) -> str:
    """A setting's text as a log line may show it: a password never."""
    return "***" if name.endswith("PASSWORD") else _hide_password(text)


def _hide_password(text: str) -> str:
    try:
        parts = urlsplit(text)
        if not parts.password:
            return text
    except ValueError:  # not a URL urllib can read: hide what may be one
        return text if "@" not in text else "***"
    user = f"{parts.username}:" if parts.username else ":"
    return parts._replace(
        netloc=f"{user}***@{parts.netloc.rpartition('@')[2]}").geturl()


def table() -> str:
    """Return the table of variables of `docs/operating.md`, generated
    from `Settings`."""
    lines = ["| variable | default | purpose |", "|---|---|---|"]
    for spec in fields(Settings):
        lines.append(f"| `{spec.metadata['env']}` | `{spec.metadata['shown']}`"
                     f" | {spec.metadata['help']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
