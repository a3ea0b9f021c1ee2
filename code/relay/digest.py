"""The name of a customer in caches, limits and Redis: a digest of its API
key, never the key."""

from __future__ import annotations

import hashlib


def key_digest(api_key: str) -> str:
    """Return a digest of the API key: what caches and limits are keyed by."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()
