"""The transport's per-key limits, on their own."""

from __future__ import annotations

from relay.transport import KeyLimits, key_digest


def test_a_held_key_is_never_evicted() -> None:
    limits = KeyLimits(1)
    assert limits.acquire("a", timeout=0)
    for n in range(5000):  # many other customers come and go
        assert limits.acquire(f"other-{n}", timeout=0)
        limits.release(f"other-{n}")
    assert not limits.acquire("a", timeout=0)  # still full: same semaphore
    assert limits.in_use() == 1
    limits.release("a")
    assert limits.in_use() == 0
    assert limits.acquire("a", timeout=0)


def test_a_key_gets_its_cap_and_no_more() -> None:
    limits = KeyLimits(3)
    assert [limits.acquire("k", timeout=0) for _ in range(4)] == [
        True, True, True, False
    ]
    assert limits.acquire("another", timeout=0)


def test_key_digest_hides_the_key() -> None:
    digest = key_digest("secret-key")
    assert "secret" not in digest
    assert len(digest) == 64 and digest == key_digest("secret-key")
    assert digest != key_digest("secret-kez")
