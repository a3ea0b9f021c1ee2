"""The per-key limits in process, on their own (the Redis form is in
test_shared.py)."""

from __future__ import annotations

from relay.digest import key_digest
from relay.limits import KeyLimits


def test_a_held_key_is_never_evicted() -> None:
    limits = KeyLimits(1)
    held = limits.acquire("a", timeout=0)
    assert held is not None
    for n in range(5000):  # many other customers come and go
        other = limits.acquire(f"other-{n}", timeout=0)
        assert other is not None
        limits.release(other)
    assert limits.acquire("a", timeout=0) is None  # still full: same one
    limits.release(held)
    assert limits.acquire("a", timeout=0) is not None


def test_a_key_gets_its_cap_and_no_more() -> None:
    limits = KeyLimits(3)
    assert [limits.acquire("k", timeout=0) is not None for _ in range(4)] == [
        True, True, True, False
    ]
    assert limits.acquire("another", timeout=0) is not None


def test_the_digest_is_the_keys_sha256() -> None:
    assert key_digest("secret-key") == (
        "85dbe15d75ef9308c7ae0f33c7a324cc6f4bf519a2ed2f3027bd33c140a4f9aa")
    assert key_digest("secret-kez") != key_digest("secret-key")
