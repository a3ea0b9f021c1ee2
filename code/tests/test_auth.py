"""The configuration token, HTTP in and HTTP out (docs/contract.md)."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests
import responses

from devtools.tokenkit import TokenKit
from relay import auth, http
from relay.factory import create_app
from relay.settings import Settings

from .conftest import API, API_KEY, JWKS_HOST, JWKS_URL

HEALTH = API + "watchlist/example.org"
OK = {"cursor": "", "hits": 0, "results": []}


def failed(text: str) -> dict:
    return {"errors": [{
        "type": "fatal", "code": "authorization error",
        "message": f"Authorization failed: {text}",
    }]}


def b64(data: dict) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def health(client, token: str | None = None, header: str | None = None):
    headers = {}
    if header is not None:
        headers["Authorization"] = header
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/health", headers=headers)


@pytest.mark.parametrize(("header", "text"), [
    (None, "Authorization header is missing"),
    ("Basic dXNlcjpwYXNz", "Wrong authorization type"),
    ("Bearer", "Wrong authorization type"),
    ("Bearer not.a.jwt", "Wrong JWT structure"),
    ("Bearer abc", "Wrong JWT structure"),
])
def test_header_failures(client, mocked, header, text) -> None:
    response = client.post(
        "/health", headers={"Authorization": header} if header else {}
    )
    assert response.status_code == 200
    assert response.json == failed(text)
    assert len(mocked.calls) == 0


def test_missing_jwks_host(client, mocked, make_token) -> None:
    assert health(client, make_token(jwks_host=None)).json == failed(
        "jwks_host is missing in JWT payload. Make sure custom_jwks_host"
        " field is present in module_type"
    )


@pytest.mark.parametrize("host", [
    "evil.example.com", "visibility.amp.cisco.com.evil.com", "169.254.169.254",
])
def test_host_not_allowlisted_gets_no_request(
        client, mocked, make_token, host) -> None:
    response = health(client, make_token(jwks_host=host))
    assert response.json == failed(
        "Wrong jwks_host in JWT payload. Make sure domain follows the"
        " visibility.<region>.cisco.com structure"
    )
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("jwks", [
    {"status": 500}, {"body": "<html>"}, {"json": {"keys": []}},
    {"json": {"nothing": 1}}, {"body": requests.ConnectionError("refused")},
])
def test_unusable_jwks(client, mocked, make_token, jwks) -> None:
    mocked.get(JWKS_URL, **jwks)
    assert health(client, make_token()).json == failed(
        "Wrong jwks_host in JWT payload. Make sure domain follows the"
        " visibility.<region>.cisco.com structure"
    )


def test_unknown_kid_refreshes_once_then_fails(
        client, mocked, jwks, kit) -> None:
    stranger = TokenKit(kit.private_key, kid="other-kid")
    token = stranger.mint({"key": API_KEY, "jwks_host": JWKS_HOST,
                           "aud": "http://localhost"})
    assert health(client, token).json == failed(
        "kid from JWT header not found in API response"
    )
    assert len(mocked.calls) == 1  # first fetch; refresh is rate-limited
    # Within the refresh interval a second unknown kid does not refetch.
    assert health(client, token).json["errors"][0]["message"].startswith(
        "Authorization failed: kid"
    )
    assert len(mocked.calls) == 1


def test_unknown_kid_triggers_exactly_one_refresh(
        settings, mocked, kit, make_token) -> None:
    now = [1000.0]
    client = create_app(settings, clock=lambda: now[0]).test_client()
    old = TokenKit(kid="old-kid")
    mocked.get(JWKS_URL, json=old.jwks())
    mocked.get(JWKS_URL, json=kit.jwks())
    mocked.get(HEALTH, json=OK)
    assert health(client, old.mint({
        "key": API_KEY, "jwks_host": JWKS_HOST, "aud": "http://localhost"
    })).json["data"] == {"status": "ok"}
    # The key rotated: the new kid is unknown in the cached JWKS; past the
    # refresh interval (30 s), within the cache's life, one refresh finds it.
    now[0] += settings.jwks_refresh_interval + 1
    mocked.get(HEALTH, json=OK)
    assert health(client, make_token()).json == {"data": {"status": "ok"}}
    assert len([c for c in mocked.calls if "jwks" in c.request.url]) == 2


def test_jwks_cached_across_requests(client, mocked, jwks, make_token) -> None:
    for _ in range(3):
        mocked.get(HEALTH, json=OK)
        assert health(client, make_token()).json == {"data": {"status": "ok"}}
    assert jwks.call_count == 1


def test_alg_none_is_refused(client, mocked) -> None:
    token = b64({"alg": "none", "typ": "JWT", "kid": "test-kid"}) + "." + \
        b64({"key": API_KEY, "jwks_host": JWKS_HOST,
             "aud": "http://localhost"}) + "."
    assert health(client, token).json == failed(
        "Failed to decode JWT with provided key. Make sure domain in"
        " custom_jwks_host corresponds to your XDR instance region."
    )
    assert len(mocked.calls) == 0


def test_hs256_signed_with_the_public_key_is_refused(
        client, mocked, kit) -> None:
    header = b64({"alg": "HS256", "typ": "JWT", "kid": "test-kid"})
    payload = b64({"key": API_KEY, "jwks_host": JWKS_HOST,
                   "aud": "http://localhost"})
    import hashlib
    import hmac
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(kit.public_pem(), signing_input,
                         hashlib.sha256).digest()
    token = f"{header}.{payload}." + base64.urlsafe_b64encode(
        signature).rstrip(b"=").decode()
    assert health(client, token).json == failed(
        "Failed to decode JWT with provided key. Make sure domain in"
        " custom_jwks_host corresponds to your XDR instance region."
    )
    assert len(mocked.calls) == 0


def test_signature_from_another_key(client, jwks) -> None:
    forger = TokenKit(kid="test-kid")
    token = forger.mint({"key": API_KEY, "jwks_host": JWKS_HOST,
                         "aud": "http://localhost"})
    assert health(client, token).json == failed(
        "Failed to decode JWT with provided key. Make sure domain in"
        " custom_jwks_host corresponds to your XDR instance region."
    )


@pytest.mark.parametrize("aud", ["http://elsewhere", None])
def test_wrong_audience(client, jwks, make_token, aud) -> None:
    assert health(client, make_token(aud=aud)).json == failed(
        "Wrong configuration-token-audience"
    )


def test_expired(client, jwks, kit) -> None:
    token = kit.mint({"key": API_KEY, "jwks_host": JWKS_HOST,
                      "aud": "http://localhost"}, lifetime=-120)
    assert health(client, token).json == failed("Token has expired")


def test_not_yet_valid(client, jwks, make_token) -> None:
    token = make_token(nbf=int(time.time()) + 600)
    assert health(client, token).json == failed("Token is not yet valid")


@pytest.mark.parametrize("claims", [
    {"iat": 2}, {"nbf": 2}, {"iat": 45, "nbf": 45}, {"exp": -30},
])
def test_a_clock_a_little_off_is_tolerated(
        client, mocked, jwks, make_token, claims) -> None:
    """XDR's clock a little ahead of ours (iat, nbf) or behind (exp)."""
    now = int(time.time())
    mocked.get(HEALTH, json=OK)
    token = make_token(**{name: now + skew for name, skew in claims.items()})
    assert health(client, token).json == {"data": {"status": "ok"}}


@pytest.mark.parametrize("claims, text", [
    ({"iat": 120}, "Token is not yet valid"),
    ({"nbf": 120}, "Token is not yet valid"),
    ({"exp": -120}, "Token has expired"),
])
def test_a_clock_far_off_is_refused(client, jwks, make_token, claims,
                                    text) -> None:
    now = int(time.time())
    token = make_token(**{name: now + skew for name, skew in claims.items()})
    assert health(client, token).json == failed(text)


@pytest.mark.parametrize("claims", [
    {"iat": "yesterday"}, {"nbf": "soon"}, {"exp": "later"}, {"iat": [1]},
    {"exp": {"at": 1}},
])
def test_a_time_claim_of_the_wrong_type_is_bad_claims(
        client, jwks, make_token, claims, caplog) -> None:
    with caplog.at_level("INFO", logger="relay"):
        answer = health(client, make_token(**claims)).json
    assert answer == failed(
        "Wrong JWT payload structure: exp, nbf and iat must be numbers")
    assert [r.fields["reason"] for r in caplog.records
            if r.getMessage() == "authorization failed"] == ["bad_claims"]


@pytest.mark.parametrize("key", [None, "", 5])
def test_missing_key(client, jwks, make_token, key) -> None:
    assert health(client, make_token(key=key)).json == failed(
        "Wrong JWT payload structure"
    )


@pytest.mark.parametrize("key", ["ключ-api", "key with space", "key\n"])
def test_key_unusable_in_a_header(client, jwks, make_token, key) -> None:
    assert health(client, make_token(key=key)).json == failed("Unauthorized")


@pytest.mark.parametrize(("headers", "reason"), [
    ({"SpyCloud-Error": "Invalid API key"}, "Invalid API key"),
    ({"SpyCloud-Error": "Invalid IP"}, "Invalid IP"),
    ({}, "Forbidden"),
])
def test_spycloud_refuses_the_key(
        client, mocked, auth, headers, reason) -> None:
    mocked.get(HEALTH, status=403, json={"message": "Forbidden"},
               headers=headers)
    assert client.post("/health", headers=auth).json == failed(reason)


def test_spycloud_401_without_message(client, mocked, auth) -> None:
    mocked.get(HEALTH, status=401, body="")
    assert client.post("/health", headers=auth).json == failed("Unauthorized")


def test_pinned_audience(mocked, make_token, kit) -> None:
    from relay.factory import create_app
    app = create_app(Settings(
        spycloud_api_url=API, allowed_jwks_hosts=frozenset({JWKS_HOST}),
        jwks_url_template="http://{jwks_host}/.well-known/jwks",
        jwt_audience="https://relay.example.com",
    ))
    mocked.get(JWKS_URL, json=kit.jwks())
    mocked.get(HEALTH, json=OK)
    client = app.test_client()
    good = make_token(aud="https://relay.example.com")
    assert health(client, good).json == {"data": {"status": "ok"}}
    assert health(client, make_token()).json == failed(
        "Wrong configuration-token-audience"
    )


def test_proxy_headers_only_when_enabled(mocked, make_token, kit) -> None:
    from relay.factory import create_app
    settings = dict(
        spycloud_api_url=API, allowed_jwks_hosts=frozenset({JWKS_HOST}),
        jwks_url_template="http://{jwks_host}/.well-known/jwks",
    )
    proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "relay.example"}
    token = make_token(aud="https://relay.example")
    mocked.get(JWKS_URL, json=kit.jwks())
    plain = create_app(Settings(**settings)).test_client()
    assert plain.post("/health", headers={
        "Authorization": f"Bearer {token}", **proxy
    }).json == failed("Wrong configuration-token-audience")
    mocked.get(JWKS_URL, json=kit.jwks())
    mocked.get(HEALTH, json=OK)
    trusting = create_app(Settings(**settings, trust_proxy_headers=True))
    assert trusting.test_client().post("/health", headers={
        "Authorization": f"Bearer {token}", **proxy
    }).json == {"data": {"status": "ok"}}


def test_api_key_sent_as_header(client, mocked, auth) -> None:
    mocked.get(HEALTH, json=OK, match=[responses.matchers.header_matcher({
        "X-API-Key": API_KEY, "Accept": "application/json",
    })])
    assert client.post("/health", headers=auth).json == {
        "data": {"status": "ok"}
    }
    agent = mocked.calls[-1].request.headers["User-Agent"]
    assert agent.endswith("/1.0.0")


def test_unusable_option_is_a_warning_beside_the_answer(
        client, mocked, make_token, jwks) -> None:
    mocked.get(API + "breach/data/emails/jane@example.com",
               json={"cursor": "", "hits": 0, "results": []})
    token = make_token(MIN_SEVERITY="critical")
    body = client.post("/observe/observables", json=[
        {"type": "email", "value": "jane@example.com"}],
        headers={"Authorization": f"Bearer {token}"}).json
    assert body == {"errors": [{
        "type": "warning", "code": "invalid argument",
        "message": "The module option MIN_SEVERITY has an unusable value"
        " 'critical'; its default (2) was used.",
    }]}


# --- a JWKS host that cannot be reached ---------------------------------------

def test_known_keys_outlive_an_unreachable_jwks_host(
        settings, mocked, kit, make_token, caplog) -> None:
    now = [1000.0]
    client = create_app(settings, clock=lambda: now[0]).test_client()
    mocked.get(JWKS_URL, json=kit.jwks())
    mocked.get(HEALTH, json=OK)
    assert health(client, make_token()).json == {"data": {"status": "ok"}}
    # The cache's life (600 s) is over and the host is down: the keys
    # fetched before are still used, the failure said once in the log.
    now[0] += settings.jwks_cache_ttl + 1
    mocked.get(JWKS_URL, body=requests.ConnectionError("down"))
    for _ in range(3):
        mocked.get(HEALTH, json=OK)
        assert health(client, make_token()).json == {"data": {"status": "ok"}}
    # One fetch per refresh interval, not one per request.
    assert len([c for c in mocked.calls if "jwks" in c.request.url]) == 2
    stale = [r for r in caplog.records if "stay usable" in r.getMessage()]
    assert len(stale) == 1
    # A day later the old keys are no longer trusted.
    now[0] += settings.jwks_stale_ttl
    mocked.get(JWKS_URL, body=requests.ConnectionError("down"))
    assert health(client, make_token()).json == failed(
        "Wrong jwks_host in JWT payload. Make sure domain follows the"
        " visibility.<region>.cisco.com structure")


def test_an_unreachable_host_is_retried_once_per_interval(
        settings, mocked, kit, make_token, caplog) -> None:
    now = [1000.0]
    client = create_app(settings, clock=lambda: now[0]).test_client()
    mocked.get(JWKS_URL, body=requests.ConnectionError("down"))
    refused = failed("Wrong jwks_host in JWT payload. Make sure domain follows"
                     " the visibility.<region>.cisco.com structure")
    caplog.set_level("INFO", logger="relay")
    for _ in range(3):
        assert health(client, make_token()).json == refused
    assert len(mocked.calls) == 1
    reasons = [r.fields["reason"] for r in caplog.records
               if r.getMessage() == "authorization failed"]
    assert reasons == ["jwks_host_unreachable"] * 3
    # The next interval tries again, and the host is back.
    now[0] += settings.jwks_refresh_interval + 1
    mocked.get(JWKS_URL, json=kit.jwks())
    mocked.get(HEALTH, json=OK)
    assert health(client, make_token()).json == {"data": {"status": "ok"}}


def test_waiting_for_a_hosts_fetch_ends_by_the_budget(mocked, kit) -> None:
    import gevent

    from relay.budget import Budget

    def slow(request):
        gevent.sleep(1.5)  # the host answers, slowly
        return 200, {}, json.dumps(kit.jwks())

    mocked.add_callback("GET", JWKS_URL, callback=slow)
    cache = auth.JwksCache(http.Client(connections=4, ca_bundle=None),
                           "http://{jwks_host}/.well-known/jwks")
    first = gevent.spawn(cache.key, JWKS_HOST, "test-kid", Budget(5))
    gevent.sleep(0.05)  # the first request is fetching the host's keys
    started = time.monotonic()
    with pytest.raises(auth.AuthorizationError) as refused:
        cache.key(JWKS_HOST, "test-kid", Budget(0.2))
    assert time.monotonic() - started < 1
    assert auth.reason_code(refused.value) == "jwks_wait_timeout"
    assert first.get().key_id == "test-kid"


def test_a_trickled_jwks_ends_by_the_budget() -> None:
    import socket
    import threading

    from relay.budget import Budget

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def trickle() -> None:  # headers at once, then a byte every 0.1 s
        connection, _ = server.accept()
        with connection:
            connection.recv(4096)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/"
                               b"json\r\nContent-Length: 30\r\n\r\n")
            for byte in b'{"keys": []}' + b" " * 18:
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.1)

    threading.Thread(target=trickle, daemon=True).start()
    cache = auth.JwksCache(http.Client(connections=4, ca_bundle=None),
                           "http://{jwks_host}/.well-known/jwks")
    started = time.monotonic()
    with pytest.raises(auth.AuthorizationError) as refused:
        cache.key(f"127.0.0.1:{port}", "test-kid", Budget(0.5))
    assert time.monotonic() - started < 1.5
    assert auth.reason_code(refused.value) == "jwks_host_unreachable"
    server.close()
