"""Operator settings from the environment."""

from __future__ import annotations

import pytest

from relay.settings import DEFAULT_JWKS_HOSTS, Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.spycloud_api_url == "https://api.spycloud.io/enterprise-v2/"
    assert settings.allowed_jwks_hosts == frozenset(DEFAULT_JWKS_HOSTS)
    assert settings.jwks_url_template == "https://{jwks_host}/.well-known/jwks"
    assert settings.jwt_audience is None
    assert settings.max_concurrency == 20
    assert settings.max_entities_limit == 1000
    assert settings.request_budget == 25.0
    assert settings.catalog_cache_ttl == 3600.0
    assert settings.max_emails_per_request == 100


def test_values() -> None:
    settings = Settings.from_env({
        "SPYCLOUD_API_URL": "http://127.0.0.1:9/api",
        "ALLOWED_JWKS_HOSTS": " A.example:8080 , b.example,,",
        "JWKS_URL_TEMPLATE": "http://{jwks_host}/jwks",
        "JWT_AUDIENCE": "https://relay.example",
        "TRUST_PROXY_HEADERS": "yes",
        "SPYCLOUD_MAX_CONCURRENCY": "3",
        "RELAY_REQUEST_BUDGET": "2.5",
        "LOG_LEVEL": "debug",
    })
    assert settings.spycloud_api_url == "http://127.0.0.1:9/api/"
    assert settings.allowed_jwks_hosts == {"a.example:8080", "b.example"}
    assert settings.jwt_audience == "https://relay.example"
    assert settings.trust_proxy_headers is True
    assert settings.max_concurrency == 3
    assert settings.request_budget == 2.5
    assert settings.log_level == "DEBUG"
    assert "key" not in str(settings.describe()).lower()


@pytest.mark.parametrize("env", [
    {"SPYCLOUD_MAX_CONCURRENCY": "0"},
    {"SPYCLOUD_MAX_CONCURRENCY": "many"},
    {"RELAY_REQUEST_BUDGET": "-1"},
    {"CATALOG_CACHE_TTL": "soon"},
    {"JWKS_URL_TEMPLATE": "https://fixed.example/jwks"},
])
def test_bad_values_fail_at_start(env) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)
