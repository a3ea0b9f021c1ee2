"""`make demo`: the relay on port 9090 against the emulator, until Ctrl-C.

The demo keeps its signing key and where it runs in `code/.demo/` (ignored
by git), so `make token CLAIMS='MIN_SEVERITY=20'` (`python -m devtools.demo
token MIN_SEVERITY=20`) mints tokens the running demo accepts.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import requests

from .stack import CODE, Stack, busy
from .tokenkit import TokenKit, claim

OBSERVABLES = Path(__file__).resolve().parents[2] / "observables.json"
STATE = CODE / ".demo"
LIFETIME = 3600  # seconds a printed token lasts
PRETTY = "python3 -m json.tool"
# Prints each sighting's relations: `relation type value`.
PIVOTS = shlex.quote(
    "import json, sys; [print(r['relation'], r['related']['type'],"
    " r['related']['value']) for s in json.load(sys.stdin)['data']"
    "['sightings']['docs'] for r in s['relations']]")
PIVOTS = f"python3 -c {PIVOTS}"
# Prints an answer's counts and its warnings.
ERRORS = shlex.quote(
    "import json, sys; b = json.load(sys.stdin); [print(k, v['count'])"
    " for k, v in b['data'].items()]; [print(e['code'], e['message'])"
    " for e in b.get('errors', [])]")
ERRORS = f"python3 -c {ERRORS}"
REFER = shlex.quote(json.dumps([{"type": "email", "value": "jane.doe@demo.test"},
                                {"type": "ipv6", "value": "2001:db8::5"}]))


def token(argv: Sequence[str]) -> None:
    """Print a token for the running demo, with *argv*'s NAME=VALUE claims."""
    try:
        where = json.loads((STATE / "demo.json").read_text())
    except OSError:
        raise SystemExit("No demo is running here: start `make demo` first.")
    if not answers(where["url"]):
        raise SystemExit(f"The demo last started here ({where['url']}) is not"
                         " running: start `make demo` first.")
    claims = {"key": where["key"], "jwks_host": where["jwks_host"],
              "aud": where["audience"]}
    try:
        claims.update(claim(text) for text in argv)
    except argparse.ArgumentTypeError as error:
        raise SystemExit(f"make token: {error} (e.g. CLAIMS='MIN_SEVERITY=20"
                         " MASK_PASSWORDS=true')") from None
    kit = TokenKit.load_or_create(STATE / "kit.pem")
    # Only the token on stdout: `$(make -s token)` is pasted into curls.
    print(kit.mint(claims, lifetime=LIFETIME))


def _forget(url: str) -> None:
    """Drop the note of the running demo, if it is still this one's (a
    demo started later on other ports wrote its own)."""
    try:
        if json.loads((STATE / "demo.json").read_text())["url"] == url:
            (STATE / "demo.json").unlink()
    except (OSError, ValueError, KeyError):
        pass


def answers(url: str) -> bool:
    """Say whether a relay answers at *url*."""
    try:
        return requests.post(url + "/version", timeout=2).ok
    except requests.RequestException:
        return False


def main(argv: Sequence[str] | None = None) -> None:
    """Start the emulator, JWKS server and relay; print curls; wait."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["token"]:
        token(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="make demo")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--emulator-port", type=int, default=8710)
    parser.add_argument("--jwks-port", type=int, default=8711)
    args = parser.parse_args(argv)
    for name, port in (("the relay", args.port),
                       ("the SpyCloud emulator", args.emulator_port),
                       ("the JWKS server", args.jwks_port)):
        if busy(port):
            raise SystemExit(
                f"make demo: port {port}, for {name}, is taken by another"
                " program. Stop it, or choose other ports, e.g. make demo"
                " DEMO_ARGS='--port 9191 --emulator-port 8810"
                " --jwks-port 8811'.")
    # The audience is pinned so the token also works via http://localhost.
    STATE.mkdir(exist_ok=True)
    audience = f"http://127.0.0.1:{args.port}"
    stack = Stack(port=args.port, emulator_port=args.emulator_port,
                  jwks_port=args.jwks_port, log=sys.stdout,
                  env={"JWT_AUDIENCE": audience},
                  kit=TokenKit.load_or_create(STATE / "kit.pem"))
    try:
        stack.start()
    except RuntimeError as exc:
        raise SystemExit(f"make demo: {exc}") from None
    (STATE / "demo.json").write_text(json.dumps({
        "url": stack.url, "jwks_host": stack.jwks.host,
        "audience": audience, "key": stack.api_key}))
    bearer = stack.token()
    auth = shlex.quote(f"Authorization: Bearer {bearer}")
    print(f"""
SpyCloud emulator  {stack.emulator.url}
JWKS server        http://{stack.jwks.host}/.well-known/jwks
Relay (gunicorn)   {stack.url}

Try it (another terminal):

curl -s -X POST {stack.url}/health -H {auth}; echo

curl -s -X POST {stack.url}/observe/observables -H {auth} \\
  -H 'Content-Type: application/json' -d @{OBSERVABLES} | {PRETTY}

A domain: its employees' records and the logins stolen for its sites,
more than the relay reads (the warning says how many SpyCloud holds):

curl -s -X POST {stack.url}/observe/observables -H {auth} \\
  -H 'Content-Type: application/json' \\
  -d '[{{"type": "domain", "value": "demo.test"}}]' | {ERRORS}

The machine an infostealer took, and where the stolen logins work:

curl -s -X POST {stack.url}/observe/observables -H {auth} \\
  -H 'Content-Type: application/json' \\
  -d '[{{"type": "email", "value": "infected@demo.test"}}]' | {PIVOTS}

curl -s -X POST {stack.url}/refer/observables -H {auth} \\
  -H 'Content-Type: application/json' \\
  -d {REFER} | {PRETTY}

curl -s -X POST {stack.url}/tiles/tile-data -H {auth} \\
  -H 'Content-Type: application/json' \\
  -d '{{"tile_id": "spycloud-exposure-summary", "period": "last_30_days"}}' \\
  | {PRETTY}

The token lasts {LIFETIME // 60} minutes. Another, with any claims:
  make token CLAIMS='MIN_SEVERITY=20 LOOKBACK_DAYS=30 MASK_PASSWORDS=true'
Demo identities and injected faults: see docs/development.md or
code/devtools/emulator.py. Press Ctrl-C to stop all three.
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
        _forget(stack.url)
        print("\nStopped the relay, the JWKS server and the emulator.")


if __name__ == "__main__":
    main()
