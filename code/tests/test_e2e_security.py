"""Hostile tokens and input against the relay under gunicorn."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
import requests

from devtools.tokenkit import JwksServer, TokenKit
from relay import observables

from . import helpers
from .helpers import answer

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_log")]

WRONG_KEY = ("Authorization failed: Failed to decode JWT with provided key."
             " Make sure domain in custom_jwks_host corresponds to your XDR"
             " instance region.")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def call(stack, token: str, body=None, path="/observe/observables"):
    return answer(stack, path, body or helpers.observables(
        "email", ["jane.doe@demo.test"]), token=token)


def message(body: dict) -> str:
    return body["errors"][0]["message"]


def claims(stack, **extra) -> dict:
    return {"key": stack.api_key, "jwks_host": stack.jwks.host,
            "aud": stack.url, "exp": int(time.time()) + 600, **extra}


def test_alg_none(stack) -> None:
    header = b64(json.dumps({"alg": "none", "kid": stack.kit.kid}).encode())
    payload = b64(json.dumps(claims(stack)).encode())
    assert message(call(stack, f"{header}.{payload}.")) == WRONG_KEY


def test_hs256_with_the_public_key_as_secret(stack) -> None:
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT",
                             "kid": stack.kit.kid}).encode())
    payload = b64(json.dumps(claims(stack)).encode())
    signature = hmac.new(stack.kit.public_pem(),
                         f"{header}.{payload}".encode(), hashlib.sha256)
    token = f"{header}.{payload}.{b64(signature.digest())}"
    assert message(call(stack, token)) == WRONG_KEY


def test_jwks_host_not_allowlisted_receives_nothing(stack) -> None:
    attacker = TokenKit(kid="attacker")
    server = JwksServer([attacker]).start()
    try:
        token = attacker.mint(claims(stack, jwks_host=server.host))
        assert message(call(stack, token)) == (
            "Authorization failed: Wrong jwks_host in JWT payload. Make sure"
            " domain follows the visibility.<region>.cisco.com structure")
        assert server.fetches == 0
    finally:
        server.stop()


def test_expired_token(stack) -> None:
    token = stack.kit.mint(claims(stack, exp=int(time.time()) - 120))
    assert message(call(stack, token)) == \
        "Authorization failed: Token has expired"


def test_unknown_kid(stack) -> None:
    token = TokenKit(stack.kit.private_key, kid="unknown").mint(claims(stack))
    assert message(call(stack, token)) == (
        "Authorization failed: kid from JWT header not found in API response")


def test_non_latin_api_key_makes_no_call(stack) -> None:
    before = stack.emulator.calls["total"]
    token = stack.token(key="ключ-доступа")
    assert message(call(stack, token)) == "Authorization failed: Unauthorized"
    assert stack.emulator.calls["total"] == before


@pytest.mark.parametrize("value", [
    "a/../../watchlist/x@demo.test", "a?cursor=x@demo.test",
    "a#frag@demo.test", "a%2f..%2fcatalog@demo.test", "%2e%2e@demo.test",
])
def test_email_cannot_steer_the_spycloud_path(stack, value) -> None:
    before = dict(stack.emulator.calls)
    body = call(stack, stack.token(), [{"type": "email", "value": value}])
    after = stack.emulator.calls
    made = {k: after[k] - before.get(k, 0) for k in after
            if after[k] != before.get(k, 0)}
    assert set(made) - {"total"} <= {"breach/data/emails", "breach/catalog"}
    assert made["breach/data/emails"] == 1
    for doc in body.get("data", {}).get("sightings", {}).get("docs", []):
        assert doc["observables"] == [{"type": "email", "value": value}]


def test_body_too_large_and_garbage(stack) -> None:
    big = requests.post(stack.url + "/observe/observables", timeout=30,
                        data=b"[" + b" " * 2_000_000 + b"]",
                        headers={"Content-Type": "application/json"})
    assert big.status_code == 413
    assert big.json()["code"] == 413
    garbage = requests.post(stack.url + "/observe/observables", timeout=30,
                            data=b"\xff\xfe{not json",
                            headers={"Content-Type": "application/json"})
    assert garbage.status_code == 200
    assert garbage.json()["errors"][0]["code"] == "invalid argument"


def test_a_caller_cannot_forge_or_flood_a_log_line(stack) -> None:
    start = stack.log_path.stat().st_size
    forged = ("/%0a2026-01-01%2000:00:00,000%20INFO%20relay:%20POST"
              "%20/health%20200%20FORGED%0d%1b[31m")
    assert requests.post(stack.url + forged, timeout=10).status_code == 404
    assert requests.post(stack.url + "/" + "x" * 8000,
                         timeout=10).status_code == 404
    lines = stack.log_path.read_text()[start:].splitlines()
    assert not any(line.startswith("2026-01-01") for line in lines)
    (line,) = [line for line in lines if "FORGED" in line]
    assert "POST /\\n2026-01-01 00:00:00,000 INFO relay:" in line
    assert "FORGED\\r\\x1b[31m 404" in line
    assert max(len(line) for line in lines) < 1200


@pytest.mark.parametrize(("kind", "value"), [
    ("user", "."), ("user", ".."), ("user", "..."), ("email", ".."),
    ("ip", ".."), ("ipv6", "."),
])
def test_a_value_of_dots_cannot_change_the_path(stack, kind, value) -> None:
    before = stack.emulator.calls["total"]
    body = call(stack, stack.token(), [{"type": kind, "value": value}])
    assert stack.emulator.calls["total"] == before
    assert body == {"errors": [{
        "type": "warning", "code": "invalid argument",
        "message": f"{value!r} is not a valid"
        f" {observables.NAMES[kind]}; it was not looked up."}]}
