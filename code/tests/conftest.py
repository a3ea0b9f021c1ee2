"""Shared fixtures: settings → app → client, a signing key, blocked network."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
import stamina
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devtools.tokenkit import TokenKit
from relay import http
from relay.factory import create_app
from relay.settings import Settings

JWKS_HOST = "jwks.test"
JWKS_URL = f"http://{JWKS_HOST}/.well-known/jwks"
API = "http://spycloud.test/enterprise-v2/"
AUDIENCE = "http://localhost"
API_KEY = "test-api-key-0123456789"
DATA = Path(__file__).parent / "data"


def load(name: str) -> Any:
    """Read a JSON fixture from tests/data."""
    return json.loads((DATA / name).read_text())


@pytest.fixture(autouse=True)
def instant_retries() -> Iterator[None]:
    """Retry without sleeping, with the relay's own attempt count."""
    with stamina.set_testing(True, attempts=3):
        yield


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any real connection but loopback: unit tests are offline."""
    real = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"network blocked in tests: {address!r}")
        return real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def kit() -> TokenKit:
    """One RSA key per test session, generated here."""
    return TokenKit(kid="test-kid")


@pytest.fixture
def settings() -> Settings:
    """Settings for unit tests: each request asks SpyCloud afresh (the
    records cache has tests of its own)."""
    return Settings(
        spycloud_api_url=API,
        allowed_jwks_hosts=frozenset({JWKS_HOST}),
        jwks_url_template="http://{jwks_host}/.well-known/jwks",
        records_cache_ttl=0,
    )


@pytest.fixture
def app(settings: Settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[responses.RequestsMock]:
    """Mock every HTTP call the relay makes (`responses` stubs, each read
    as the relay's client reads an answer); an unexpected or unused one
    fails the test. Passed-through URLs go to the relay's real client."""
    real = http.Client._exchange
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        def exchange(client: http.Client, url: str,
                     headers: Mapping[str, str], timeout: tuple[float, float],
                     max_bytes: int) -> http.Reply:
            if any(url.startswith(str(prefix))
                   for prefix in rsps.passthru_prefixes):
                return real(client, url, headers, timeout, max_bytes)
            return _stubbed(url, headers, timeout, max_bytes)

        monkeypatch.setattr(http.Client, "_exchange", exchange)
        yield rsps


def _stubbed(url: str, headers: Mapping[str, str],
             timeout: tuple[float, float], max_bytes: int) -> http.Reply:
    """One GET answered by a `responses` stub, its failures turned into
    the relay's `HttpError`s as its client's are."""
    request = requests.Request("GET", url, headers=dict(headers)).prepare()
    try:
        response = requests.adapters.HTTPAdapter().send(
            request, timeout=timeout, stream=True)
        body = b""
        for chunk in response.iter_content(http.CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise http.TooLarge(max_bytes, response.status_code)
        return http.Reply(response.status_code, response.headers, body)
    except requests.exceptions.SSLError as exc:
        raise http.Unverified(str(exc)) from exc
    except requests.Timeout as exc:
        raise http.TimedOut() from exc
    except (requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError) as exc:
        raise http.Unreachable() from exc
    except requests.RequestException as exc:  # any other: by its name
        raise http.HttpError(type(exc).__name__) from exc


@pytest.fixture
def jwks(mocked: responses.RequestsMock, kit: TokenKit) -> responses.BaseResponse:
    """Publish the session key at the allowlisted JWKS host."""
    return mocked.get(JWKS_URL, json=kit.jwks())


@pytest.fixture
def make_token(kit: TokenKit) -> Callable[..., str]:
    def make(**claims: Any) -> str:
        base = {"key": API_KEY, "jwks_host": JWKS_HOST, "aud": AUDIENCE}
        base.update(claims)
        return kit.mint({k: v for k, v in base.items() if v is not None})
    return make


@pytest.fixture
def auth(make_token: Callable[..., str], jwks) -> dict[str, str]:
    """Headers carrying a valid token (the JWKS is served once)."""
    return {"Authorization": f"Bearer {make_token()}"}


# --- end to end: the real relay under gunicorn -------------------------------

E2E_KEY = "e2e-Key-5f3c9a2d1e60-not-for-logs"
E2E_ENV = {
    "SPYCLOUD_READ_TIMEOUT": "2.5",
    "SPYCLOUD_CONNECT_TIMEOUT": "1",
    "RELAY_REQUEST_BUDGET": "6",
    "SPYCLOUD_RETRY_WAIT": "0.01",
    "SPYCLOUD_RETRY_WAIT_MAX": "0.05",
}


def _running(tmp_path_factory: pytest.TempPathFactory, name: str,
             env: dict[str, str]) -> Iterator[Any]:
    """Start a stack whose log, tokens and observables tests can scan."""
    from devtools.stack import Stack

    log_path = tmp_path_factory.mktemp(name) / "relay.log"
    with log_path.open("w") as log, Stack(
        api_key=E2E_KEY, env=env, log=log
    ) as running:
        running.log_path = log_path
        running.tokens = []
        running.emails = set()
        yield running


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Emulator + JWKS server + the relay under gunicorn, for the session."""
    yield from _running(tmp_path_factory, "relay", E2E_ENV)


@pytest.fixture(scope="session")
def hang_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A relay with a 1.5 s budget, for what hangs: tests need not wait long."""
    yield from _running(tmp_path_factory, "hang", {
        **E2E_ENV, "RELAY_REQUEST_BUDGET": "1.5",
        "SPYCLOUD_READ_TIMEOUT": "0.6", "SPYCLOUD_CONNECT_TIMEOUT": "0.5"})


SECRET_FIELDS = ("password", "password_plaintext", "salt")


def assert_log_clean(stack: Any) -> None:
    """The relay's log must hold no API key, token or breach password,
    masked or not, of any observable the tests asked about."""
    from devtools import synthetic
    from relay.ctim import masked

    log = stack.log_path.read_text()
    assert stack.api_key not in log
    assert not any(token in log for token in stack.tokens)
    for value in stack.emails:
        for selector in ("emails", "usernames", "ips"):
            for record in synthetic.find(selector, value):
                for field, secret in record.items():
                    # Shorter values (a card's code) can't be told from
                    # the hex of request ids; the card number can.
                    if (field in SECRET_FIELDS or field.startswith("cc_")) \
                            and len(secret) >= 8:
                        assert secret not in log, f"{field} of {value}"
                        # Other masks are one fixed string, telling nothing.
                        if field == "cc_number":
                            assert masked(secret, field) not in log, value
    assert "Traceback" not in log


@pytest.fixture
def clean_log(stack: Any) -> Iterator[None]:
    """After each end-to-end test, scan the relay's log for secrets."""
    yield
    assert_log_clean(stack)


# --- TLS with a private CA, as behind a TLS-inspecting proxy ---------------

def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA, and a certificate it signed for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Inspecting proxy CA"))
          .issuer_name(_name("Inspecting proxy CA"))
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder().subject_name(_name("127.0.0.1"))
              .issuer_name(ca.subject).public_key(key.public_key())
              .serial_number(2)
              .not_valid_before(now - dt.timedelta(days=1))
              .not_valid_after(now + dt.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
                  ipaddress.ip_address("127.0.0.1"))]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = {name: folder / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_bytes(_pem(ca))
    paths["cert"].write_bytes(_pem(server))
    paths["key"].write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return paths
