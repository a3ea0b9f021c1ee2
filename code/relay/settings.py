"""Operator settings, parsed from the environment once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_SPYCLOUD_API_URL = "https://api.spycloud.io/enterprise-v2/"
DEFAULT_JWKS_HOSTS = (
    "visibility.amp.cisco.com",
    "visibility.eu.amp.cisco.com",
    "visibility.apjc.amp.cisco.com",
)
DEFAULT_JWKS_URL_TEMPLATE = "https://{jwks_host}/.well-known/jwks"
DEFAULT_PORTAL_URL = "https://portal.spycloud.com"


class SettingsError(ValueError):
    """An environment variable holds a value the relay cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything the operator can tune; see the README's table."""

    spycloud_api_url: str = DEFAULT_SPYCLOUD_API_URL
    allowed_jwks_hosts: frozenset[str] = frozenset(DEFAULT_JWKS_HOSTS)
    jwks_url_template: str = DEFAULT_JWKS_URL_TEMPLATE
    jwt_audience: str | None = None
    trust_proxy_headers: bool = False
    jwks_cache_ttl: float = 600.0
    jwks_refresh_interval: float = 30.0
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    request_budget: float = 25.0
    max_pages: int = 10
    max_concurrency: int = 20
    retry_attempts: int = 3
    retry_wait_initial: float = 0.2
    retry_wait_max: float = 2.0
    catalog_cache_ttl: float = 3600.0
    catalog_cache_size: int = 10_000
    max_emails_per_request: int = 100
    max_entities_limit: int = 1000
    max_body_bytes: int = 1_048_576
    records_cache_ttl: float = 300.0
    records_cache_size: int = 20_000
    portal_url: str = DEFAULT_PORTAL_URL
    tiles_cache_ttl: float = 900.0
    tiles_max_pages: int = 20
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from *env* (default: the process environment)."""
        env = os.environ if env is None else env
        reader = _Reader(env)
        url = reader.text("SPYCLOUD_API_URL", DEFAULT_SPYCLOUD_API_URL)
        if not url.endswith("/"):
            url += "/"
        template = reader.text("JWKS_URL_TEMPLATE", DEFAULT_JWKS_URL_TEMPLATE)
        if "{jwks_host}" not in template:
            raise SettingsError(
                "JWKS_URL_TEMPLATE must contain {jwks_host}"
            )
        hosts = reader.text("ALLOWED_JWKS_HOSTS", ",".join(DEFAULT_JWKS_HOSTS))
        return cls(
            spycloud_api_url=url,
            allowed_jwks_hosts=frozenset(
                h.strip().lower() for h in hosts.split(",") if h.strip()
            ),
            jwks_url_template=template,
            jwt_audience=reader.text("JWT_AUDIENCE", "") or None,
            trust_proxy_headers=reader.flag("TRUST_PROXY_HEADERS"),
            jwks_cache_ttl=reader.number("JWKS_CACHE_TTL", 600.0),
            jwks_refresh_interval=reader.number(
                "JWKS_REFRESH_INTERVAL", 30.0
            ),
            connect_timeout=reader.number("SPYCLOUD_CONNECT_TIMEOUT", 3.05),
            read_timeout=reader.number("SPYCLOUD_READ_TIMEOUT", 10.0),
            request_budget=reader.number("RELAY_REQUEST_BUDGET", 25.0),
            max_pages=reader.integer("SPYCLOUD_MAX_PAGES", 10),
            max_concurrency=reader.integer("SPYCLOUD_MAX_CONCURRENCY", 20),
            retry_attempts=reader.integer("SPYCLOUD_RETRY_ATTEMPTS", 3),
            retry_wait_initial=reader.number("SPYCLOUD_RETRY_WAIT", 0.2),
            retry_wait_max=reader.number("SPYCLOUD_RETRY_WAIT_MAX", 2.0),
            catalog_cache_ttl=reader.number("CATALOG_CACHE_TTL", 3600.0),
            catalog_cache_size=reader.integer("CATALOG_CACHE_SIZE", 10_000),
            max_emails_per_request=reader.integer(
                "MAX_EMAILS_PER_REQUEST", 100
            ),
            max_entities_limit=reader.integer("MAX_ENTITIES_LIMIT", 1000),
            max_body_bytes=reader.integer("MAX_BODY_BYTES", 1_048_576),
            records_cache_ttl=reader.number("RECORDS_CACHE_TTL", 300.0,
                                            zero=True),
            records_cache_size=reader.integer("RECORDS_CACHE_SIZE", 20_000),
            portal_url=reader.text("SPYCLOUD_PORTAL_URL",
                                   DEFAULT_PORTAL_URL).rstrip("/"),
            tiles_cache_ttl=reader.number("TILES_CACHE_TTL", 900.0),
            tiles_max_pages=reader.integer("TILES_MAX_PAGES", 20),
            log_level=reader.text("LOG_LEVEL", "INFO").upper(),
        )

    def describe(self) -> dict[str, object]:
        """Return the effective settings for the start-up log line."""
        return {
            "spycloud_api_url": self.spycloud_api_url,
            "allowed_jwks_hosts": sorted(self.allowed_jwks_hosts),
            "jwks_url_template": self.jwks_url_template,
            "jwt_audience": self.jwt_audience,
            "trust_proxy_headers": self.trust_proxy_headers,
            "request_budget": self.request_budget,
            "timeouts": [self.connect_timeout, self.read_timeout],
            "max_concurrency": self.max_concurrency,
            "max_pages": self.max_pages,
            "retry_attempts": self.retry_attempts,
            "catalog_cache_ttl": self.catalog_cache_ttl,
            "max_emails_per_request": self.max_emails_per_request,
            "max_entities_limit": self.max_entities_limit,
            "records_cache_ttl": self.records_cache_ttl,
            "records_cache_size": self.records_cache_size,
            "portal_url": self.portal_url,
            "tiles_cache_ttl": self.tiles_cache_ttl,
            "tiles_max_pages": self.tiles_max_pages,
        }


class _Reader:
    """Typed access to environment variables with clear failures."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str, default: str) -> str:
        return self._env.get(name, default).strip()

    def flag(self, name: str) -> bool:
        return self.text(name, "").lower() in {"1", "true", "yes", "on"}

    def number(self, name: str, default: float, zero: bool = False) -> float:
        raw = self.text(name, "")
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, not {raw!r}") from None
        if value < 0 or (value == 0 and not zero) or value != value:
            raise SettingsError(f"{name} must be positive, not {raw!r}")
        return value

    def integer(self, name: str, default: int) -> int:
        raw = self.text(name, "")
        if not raw:
            return default
        if not raw.isdigit() or int(raw) < 1:
            raise SettingsError(
                f"{name} must be a positive integer, not {raw!r}"
            )
        return int(raw)
