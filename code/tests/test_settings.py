"""Operator settings from the environment."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from relay.settings import DEFAULT_JWKS_HOSTS, Settings, SettingsError, table


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
    assert Settings.from_env({"JWT_AUDIENCE": "https://relay.example/"}
                             ).jwt_audience == "https://relay.example"
    assert settings.trust_proxy_headers is True
    assert settings.max_concurrency == 3
    assert settings.request_budget == 2.5
    assert settings.log_level == "DEBUG"
    # The start-up line holds no API key: keys arrive in tokens.
    described = str(settings.describe()).lower()
    assert "key" not in described.replace("redis_key_file", "")


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


def test_the_documented_table_is_the_settings_table() -> None:
    readme = (Path(__file__).parents[2] / "docs" / "operating.md").read_text()
    start = readme.index("<!-- settings-table:start -->\n") + len(
        "<!-- settings-table:start -->\n")
    end = readme.index("\n<!-- settings-table:end -->")
    assert readme[start:end] == table()


def test_every_setting_has_a_variable_and_a_description() -> None:
    names = [f.metadata["env"] for f in fields(Settings)]
    assert len(names) == len(set(names))
    assert all(f.metadata["help"] for f in fields(Settings))
    described = Settings().describe()
    assert list(described) == names
    assert described["ALLOWED_JWKS_HOSTS"] == ",".join(sorted(
        DEFAULT_JWKS_HOSTS))


@pytest.mark.parametrize(("env", "line"), [
    ({"ALLOWED_JWKS_HOSTS": ""}, "ALLOWED_JWKS_HOSTS='' cannot be used:"
     " expected at least one host (host or host:port, not a URL),"
     " comma-separated"),
    ({"TRUST_PROXY_HEADERS": "maybe"}, "TRUST_PROXY_HEADERS='maybe' cannot"
     " be used: expected true or false (also yes/no, on/off, 1/0)"),
    ({"SPYCLOUD_API_URL": "notaurl"}, "SPYCLOUD_API_URL='notaurl' cannot be"
     " used: expected an http:// or https:// URL"),
    ({"RELAY_REQUEST_BUDGET": "abc"}, "RELAY_REQUEST_BUDGET='abc' cannot be"
     " used: expected a number of seconds above 0, at most 300"),
    ({"RELAY_REQUEST_BUDGET": "nan"}, "RELAY_REQUEST_BUDGET='nan' cannot be"
     " used: expected a number of seconds above 0, at most 300"),
    ({"RELAY_REQUEST_BUDGET": "86400"}, "RELAY_REQUEST_BUDGET='86400' cannot"
     " be used: expected a number of seconds above 0, at most 300"),
    ({"WEB_CONCURRENCY": "two"}, "WEB_CONCURRENCY='two' cannot be used:"
     " expected a whole number of 1 or more"),
    ({"WORKER_CONNECTIONS": "0"}, "WORKER_CONNECTIONS='0' cannot be used:"
     " expected a whole number of 1 or more"),
    ({"WEB_CONCURRENCY": "²"}, "WEB_CONCURRENCY='²' cannot be used:"
     " expected a whole number of 1 or more"),
    ({"WEB_CONCURRENCY": "9" * 50}, f"WEB_CONCURRENCY='{'9' * 50}' cannot be"
     " used: expected a whole number of 1 or more"),
    ({"REQUESTS_CA_BUNDLE": "/nowhere/ca.pem"}, "REQUESTS_CA_BUNDLE="
     "'/nowhere/ca.pem' cannot be used: expected the path of a readable PEM"
     " file of CA certificates"),
    ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL='verbose' cannot be used:"
     " expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT='xml' cannot be used: expected one"
     " of text, json"),
    ({"BIND": "0.0.0.0:99999"}, "BIND='0.0.0.0:99999' cannot be used:"
     " expected HOST:PORT with a port from 1 to 65535"),
    ({"BIND": "9090"}, "BIND='9090' cannot be used:"
     " expected HOST:PORT, e.g. 0.0.0.0:9090"),
    ({"METRICS_BIND": "0.0.0.0:9090"}, "METRICS_BIND='0.0.0.0:9090' cannot"
     " be used: expected another port than BIND's (0.0.0.0:9090)"),
    ({"ALLOWED_JWKS_HOSTS": "https://visibility.amp.cisco.com"},
     "ALLOWED_JWKS_HOSTS='https://visibility.amp.cisco.com' cannot be used:"
     " expected at least one host (host or host:port, not a URL),"
     " comma-separated"),
    ({"JWT_AUDIENCE": "relay.example.com"}, "JWT_AUDIENCE="
     "'relay.example.com' cannot be used: expected an http:// or https://"
     " URL"),
    ({"METRICS_BIND": ":9100"}, "METRICS_BIND=':9100' cannot be used:"
     " expected HOST:PORT, e.g. 0.0.0.0:9090"),
    ({"RECORDS_CACHE_TTL": "-5"}, "RECORDS_CACHE_TTL='-5' cannot be used:"
     " expected a number of seconds, 0 or more"),
])
def test_refusals_name_variable_value_and_what_is_allowed(env, line) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    assert str(refused.value) == line


def test_blank_means_default_and_zero_turns_the_records_cache_off() -> None:
    settings = Settings.from_env({"LOG_LEVEL": " ", "RECORDS_CACHE_TTL": "0",
                                  "METRICS_BIND": "127.0.0.1:9100",
                                  "LOG_FORMAT": "JSON"})
    assert settings.log_level == "INFO"
    assert settings.records_cache_ttl == 0
    assert settings.metrics_bind == "127.0.0.1:9100"
    assert settings.log_format == "json"


def test_the_deployment_example_names_only_real_settings() -> None:
    compose = (Path(__file__).parents[2] / "docs" / "deploy"
               / "compose.yaml").read_text()
    block = compose.split("    environment:\n", 1)[1].split("    depends_on:")[0]
    names = [line.strip().split(":")[0] for line in block.splitlines()
             if line.strip() and not line.strip().startswith("#")]
    known = {f.metadata["env"] for f in fields(Settings)}
    assert names and set(names) <= known, set(names) - known
    env = {line.strip().split(":", 1)[0]: line.split(":", 1)[1].strip()
           .strip('"') for line in block.splitlines()
           if line.strip() and not line.strip().startswith("#")}
    Settings.from_env(env)  # every value there is one the relay accepts


def test_the_proxy_example_keeps_audience_413_and_replicas_right() -> None:
    nginx = (Path(__file__).parents[2] / "docs" / "deploy"
             / "nginx.conf").read_text()
    directives = [line.split("#")[0].strip() for line in nginx.splitlines()]
    # A TLS terminator's X-Forwarded-Proto is passed on, not replaced by
    # nginx's own (plain http) scheme: the audience is the https URL.
    assert "proxy_set_header X-Forwarded-Proto $forwarded_proto;" in directives
    assert "default $http_x_forwarded_proto;" in directives
    # nginx lets bodies through up to above the relay's cap: the relay's
    # own JSON 413 answers.
    (limit,) = [d for d in directives if d.startswith("client_max_body_size")]
    assert int(limit.split()[1].rstrip("m;")) * 2**20 > Settings().max_body_bytes
    # The replicas' name is resolved again, so scaled replicas are found.
    assert any(d.startswith("resolver ") and "valid=" in d for d in directives)
    assert "server relay:9090 resolve;" in directives


def test_a_password_in_a_url_never_reaches_the_start_up_line() -> None:
    settings = Settings.from_env({
        "REDIS_URL": "redis://relay:s3cr3t-pass@redis.internal:6379/0",
        "SPYCLOUD_API_URL": "https://user:other-secret@proxy.example/api/"})
    shown = str(settings.describe())
    assert "s3cr3t-pass" not in shown and "other-secret" not in shown
    assert settings.describe()["REDIS_URL"] == \
        "redis://relay:***@redis.internal:6379/0"
    assert settings.redis_url.endswith("s3cr3t-pass@redis.internal:6379/0")


def test_variables_that_look_like_settings_are_named() -> None:
    from relay.settings import strangers

    assert strangers({
        "ALLOWED_JWKS_HOST": "x", "REDIS_URI": "redis://r", "REDIS_HOST": "r",
        "SPYCLOUD_API_KEY": "k", "WEB_CONCURENCY": "2", "HOME": "/root",
        "PATH": "/bin", "MAX_BODY_BYTES": "10", "LOG_LEVEL": "INFO",
    }) == [("ALLOWED_JWKS_HOST", "ALLOWED_JWKS_HOSTS"),
           ("REDIS_HOST", "REDIS_URL"), ("REDIS_URI", "REDIS_URL"),
           ("SPYCLOUD_API_KEY", "SPYCLOUD_API_URL"),
           ("WEB_CONCURENCY", "WEB_CONCURRENCY")]
