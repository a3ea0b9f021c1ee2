"""The per-key limits in process, on their own (the Redis form is in
test_shared.py)."""

from __future__ import annotations

from relay.digest import key_digest
from relay.limits import KeyLimits


def test_a_held_key_is_never_evicted() -> None:
    limits = KeyLimits(1)
    assert limits.acquire("a", timeout=0)
    for n in range(5000):  # many other customers come and go
        assert limits.acquire(f"other-{n}", timeout=0)
        limits.release(f"other-{n}")
    assert not limits.acquire("a", timeout=0)  # still full: same semaphore
    limits.release("a")
    assert limits.acquire("a", timeout=0)


def test_a_key_gets_its_cap_and_no_more() -> None:
    limits = KeyLimits(3)
    assert [limits.acquire("k", timeout=0) for _ in range(4)] == [
        True, True, True, False
    ]
    assert limits.acquire("another", timeout=0)


def test_the_digest_is_the_keys_sha256() -> None:
    assert key_digest("secret-key") == (
        "85dbe15d75ef9308c7ae0f33c7a324cc6f4bf519a2ed2f3027bd33c140a4f9aa")
    assert key_digest("secret-kez") != key_digest("secret-key")
