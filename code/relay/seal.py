"""Values only their customer can read: AES-GCM under a key derived (HKDF)
from the customer's API key, for what a shared store holds that names
people (the tiles' figures)."""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class Seal:
    """AES-GCM under a key derived from one customer's API key: what it
    closes only a holder of that API key can open. The Redis key is the
    associated data, so a value cannot be moved to another key."""

    NONCE = 12

    def __init__(self, api_key: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=b"spycloud-relay tiles v2").derive(
                           api_key.encode("utf-8"))
        self._aead = AESGCM(derived)

    def close(self, name: str, value: Any) -> bytes:
        nonce = os.urandom(self.NONCE)
        return nonce + self._aead.encrypt(
            nonce, json.dumps(value).encode(), name.encode())

    def open(self, name: str, sealed: bytes) -> Any:
        return json.loads(self._aead.decrypt(
            sealed[:self.NONCE], sealed[self.NONCE:], name.encode()))
