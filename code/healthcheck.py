"""The image's health check: `GET /watchdog` on the address the relay
listens on (`BIND`, as the relay reads it), exit 0 when it answers.

    python healthcheck.py
"""

from __future__ import annotations

import os
import sys
import urllib.request

DEFAULT_BIND = "0.0.0.0:9090"


def probe_url(bind: str) -> str:
    """Return the watchdog URL for a listening address: a wildcard host is
    probed on loopback, any other as it is."""
    host, _, port = bind.strip().rpartition(":")
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "[::]": "[::1]",
            "::": "[::1]"}.get(host, host)
    return f"http://{host}:{port}/watchdog"


def main() -> int:
    url = probe_url(os.environ.get("BIND", "").strip() or DEFAULT_BIND)
    request = urllib.request.Request(url, headers={"Health-Check": "docker"})
    try:
        # An http URL of the relay's own address, built above.
        with urllib.request.urlopen(request, timeout=4) as answer:  # noqa: S310
            return 0 if answer.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
