"""The image's health check probes the address the relay listens on."""

from __future__ import annotations

import pytest

from healthcheck import probe_url


@pytest.mark.parametrize("bind, url", [
    ("0.0.0.0:9090", "http://127.0.0.1:9090/watchdog"),
    ("0.0.0.0:8080", "http://127.0.0.1:8080/watchdog"),
    ("127.0.0.1:9191", "http://127.0.0.1:9191/watchdog"),
    ("[::]:9090", "http://[::1]:9090/watchdog"),
    ("[::1]:9091", "http://[::1]:9091/watchdog"),
    ("relay.internal:9090", "http://relay.internal:9090/watchdog"),
])
def test_the_probe_follows_bind(bind: str, url: str) -> None:
    assert probe_url(bind) == url
