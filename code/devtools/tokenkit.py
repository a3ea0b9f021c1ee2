"""Token kit: an RSA key pair, a loopback JWKS server, configuration tokens.

XDR signs each module instance's configuration token with a key published at
`https://<jwks_host>/.well-known/jwks`. This kit plays that part locally:

    python -m devtools.tokenkit serve --port 8711 --key-file /tmp/kit.pem
    python -m devtools.tokenkit mint --key-file /tmp/kit.pem \\
        --claim key=demo-key --claim jwks_host=127.0.0.1:8711 \\
        --claim aud=http://127.0.0.1:9090

Tests import `TokenKit` and `JwksServer` directly.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .loopback import LoopbackServer

JWKS_PATH = "/.well-known/jwks"


class TokenKit:
    """An RSA signing key and the JWKS that publishes it."""

    def __init__(
        self,
        private_key: rsa.RSAPrivateKey | None = None,
        kid: str = "relay-dev-key",
    ) -> None:
        self.private_key = private_key or rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
        self.kid = kid

    @classmethod
    def load_or_create(cls, path: Path) -> TokenKit:
        """Read the key at *path*, creating it on first use."""
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), None)
            return cls(key)  # type: ignore[arg-type]
        kit = cls()
        path.write_bytes(kit.private_pem())
        path.chmod(0o600)
        return kit

    def private_pem(self) -> bytes:
        """Return the private key as unencrypted PKCS#8 PEM."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_pem(self) -> bytes:
        """Return the public key as PEM (what an HS256 forger would use)."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )

    def jwks(self) -> dict[str, Any]:
        """Return the JWKS document publishing the public key."""
        jwk = json.loads(
            jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key())
        )
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def mint(
        self,
        claims: dict[str, Any],
        *,
        lifetime: float | None = 3600,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """Sign *claims* with RS256; `exp` is added unless *lifetime* is None."""
        payload = dict(claims)
        if lifetime is not None and "exp" not in payload:
            payload["exp"] = int(time.time() + lifetime)
        return jwt.encode(
            payload,
            self.private_key,
            algorithm="RS256",
            headers={"kid": self.kid, **(headers or {})},
        )


class JwksServer(LoopbackServer):
    """Serves one or more kits' JWKS at `/.well-known/jwks` on loopback."""

    def __init__(
        self, kits: Sequence[TokenKit], host: str = "127.0.0.1", port: int = 0,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.kits = list(kits)
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path != JWKS_PATH:
                    self.send_error(404)
                    return
                server.fetches += 1
                keys = [k for kit in server.kits for k in kit.jwks()["keys"]]
                data = json.dumps({"keys": keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler, host, port, tls)

    @property
    def host(self) -> str:
        """Return `host:port`, the value of a token's `jwks_host` claim."""
        return self.address


def claim(text: str) -> tuple[str, Any]:
    """Read `NAME=VALUE`; VALUE is JSON when it parses, else a string."""
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a JWKS or mint a token from the command line."""
    parser = argparse.ArgumentParser(prog="python -m devtools.tokenkit")
    parser.add_argument("command", choices=["serve", "mint", "jwks"])
    parser.add_argument("--key-file", type=Path, default=Path("tokenkit.pem"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8711)
    parser.add_argument(
        "--claim", type=claim, action="append", default=[],
        help="NAME=VALUE; VALUE is read as JSON when it parses",
    )
    parser.add_argument("--lifetime", type=float, default=3600)
    args = parser.parse_args(argv)
    kit = TokenKit.load_or_create(args.key_file)
    if args.command == "mint":
        print(kit.mint(dict(args.claim), lifetime=args.lifetime))
    elif args.command == "jwks":
        print(json.dumps(kit.jwks(), indent=2))
    else:
        server = JwksServer([kit], args.host, args.port)
        print(f"JWKS at http://{server.host}{JWKS_PATH}", flush=True)
        server.serve()


if __name__ == "__main__":
    main()
