"""SpyCloud behind a TLS-inspecting proxy: its certificate is signed by a
private CA that the operator names in `REQUESTS_CA_BUNDLE` (or
`SSL_CERT_FILE`). The emulator serves HTTPS on loopback with such a
certificate."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.emulator import DEFAULT_KEY, Emulator
from relay.factory import create_app

from .helpers import ThreadedServer


@pytest.fixture(scope="module")
def https_emulator(certificates: dict[str, Path]) -> Iterator[Emulator]:
    emulator = Emulator(tls=(str(certificates["cert"]),
                             str(certificates["key"]))).start()
    yield emulator
    emulator.stop()


def health(settings, mocked, make_token, emulator: Emulator) -> dict:
    mocked.add_passthru(emulator.url)
    client = create_app(dataclasses.replace(
        settings, spycloud_api_url=emulator.url)).test_client()
    token = make_token(key=DEFAULT_KEY)
    return client.post("/health", headers={
        "Authorization": f"Bearer {token}"}).json


@pytest.mark.parametrize("field", ["ca_bundle", "ssl_cert_file"])
def test_the_operators_ca_bundle_is_trusted(
        settings, mocked, jwks, make_token, https_emulator, certificates,
        field) -> None:
    settings = dataclasses.replace(settings, **{field: str(certificates["ca"])})
    assert https_emulator.url.startswith("https://")
    assert health(settings, mocked, make_token, https_emulator) == {
        "data": {"status": "ok"}}


def test_without_the_bundle_the_certificate_is_refused(
        settings, mocked, jwks, make_token, https_emulator) -> None:
    answer = health(settings, mocked, make_token, https_emulator)
    assert answer["errors"][0]["code"] == "unknown"
    assert answer["errors"][0]["message"].startswith(
        "Unable to verify SSL certificate:")


@pytest.mark.parametrize("field", ["ca_bundle", "ssl_cert_file"])
def test_a_jwks_host_behind_the_private_ca_is_trusted(
        settings, mocked, kit, certificates, https_emulator, field) -> None:
    from devtools.tokenkit import JwksServer

    jwks = JwksServer([kit], tls=(str(certificates["cert"]),
                                  str(certificates["key"]))).start()
    try:
        mocked.add_passthru(f"https://{jwks.host}")
        mocked.add_passthru(https_emulator.url)
        client = create_app(dataclasses.replace(
            settings, spycloud_api_url=https_emulator.url,
            allowed_jwks_hosts=frozenset({jwks.host}),
            jwks_url_template="https://{jwks_host}/.well-known/jwks",
            **{field: str(certificates["ca"])})).test_client()
        token = kit.mint({"key": DEFAULT_KEY, "jwks_host": jwks.host,
                          "aud": "http://localhost"})
        assert client.post("/health", headers={
            "Authorization": f"Bearer {token}"}).json == {
                "data": {"status": "ok"}}
        assert jwks.fetches == 1
    finally:
        jwks.stop()


class TunnelProxy(ThreadedServer):
    """An HTTP proxy that only tunnels (CONNECT), on real threads; notes
    each CONNECT's target."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        super().__init__()

    def serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(4096) or b"\r\n\r\n"
        method, target, _ = head.split(b"\r\n")[0].decode().split(" ")
        self.targets.append(f"{method} {target}")
        host, _, port = target.rpartition(":")
        upstream = self.connect(host, int(port))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.spawn(self._pipe, upstream, client)
        self._pipe(client, upstream)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()


def test_spycloud_behind_a_proxy_is_reached_through_its_tunnel(
        settings, mocked, jwks, make_token, https_emulator, certificates,
        monkeypatch) -> None:
    proxy = TunnelProxy()
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.origin)
        for name in ("NO_PROXY", "no_proxy", "https_proxy", "ALL_PROXY",
                     "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        settings = dataclasses.replace(settings,
                                       ca_bundle=str(certificates["ca"]))
        assert health(settings, mocked, make_token, https_emulator) == {
            "data": {"status": "ok"}}
        netloc = https_emulator.url.split("/")[2]
        assert proxy.targets == [f"CONNECT {netloc}"]
    finally:
        proxy.close()
