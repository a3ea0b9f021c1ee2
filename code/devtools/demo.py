"""`make demo`: the relay on port 9090 against the emulator, until Ctrl-C."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .stack import Stack

OBSERVABLES = Path(__file__).resolve().parents[2] / "observables.json"


def main(argv: Sequence[str] | None = None) -> None:
    """Start the emulator, JWKS server and relay; print curls; wait."""
    parser = argparse.ArgumentParser(prog="make demo")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--emulator-port", type=int, default=8710)
    parser.add_argument("--jwks-port", type=int, default=8711)
    args = parser.parse_args(argv)
    # The audience is pinned so the token also works via http://localhost.
    stack = Stack(port=args.port, emulator_port=args.emulator_port,
                  jwks_port=args.jwks_port, log=sys.stdout,
                  env={"JWT_AUDIENCE": f"http://127.0.0.1:{args.port}"})
    stack.start()
    token = stack.token()
    auth = shlex.quote(f"Authorization: Bearer {token}")
    print(f"""
SpyCloud emulator  {stack.emulator.url}
JWKS server        http://{stack.jwks.host}/.well-known/jwks
Relay (gunicorn)   {stack.url}

Try it (another terminal):

curl -s -X POST {stack.url}/health -H {auth}

curl -s -X POST {stack.url}/observe/observables -H {auth} \\
  -H 'Content-Type: application/json' -d @{OBSERVABLES}

Demo emails and injected faults: see code/devtools/emulator.py.
Press Ctrl-C to stop all three.
""", flush=True)
    # Set both explicitly: a shell may start a background job ignoring SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        stack.stop()
        print("\nStopped the relay, the JWKS server and the emulator.")


if __name__ == "__main__":
    main()
