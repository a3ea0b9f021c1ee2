"""What many tests need: SpyCloud's list answers, and a call to a running
relay that notes its token and observables for the log scan."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests

from relay.digest import key_digest


def page(results: list[Any], cursor: str = "") -> dict[str, Any]:
    """One page of a SpyCloud list answer."""
    return {"cursor": cursor, "hits": len(results), "results": results}


def free_slots(app: Any, api_key: str) -> int:
    """How many slots of *api_key*'s cap on SpyCloud calls are free in the
    relay *app* now (each taken, counted and given back)."""
    limits = app.extensions["relay"].spycloud.transport.limits
    taken = []
    while (slot := limits.acquire(key_digest(api_key), 0)) is not None:
        taken.append(slot)
    for slot in taken:
        limits.release(slot)
    return len(taken)


def observables(kind: str, values: Iterable[str]) -> list[dict[str, str]]:
    """An observe body of *values*, all of one type."""
    return [{"type": kind, "value": value} for value in values]


def post(stack: Any, path: str, body: Any = None, *, token: str | None = None,
         headers: Mapping[str, str] | None = None, timeout: float = 30,
         **claims: Any) -> requests.Response:
    """POST *body* to *path* of the relay of *stack*, with *token* (or one
    minted with *claims*); on a stack whose log is scanned after the test
    (`conftest.assert_log_clean`), the token and the observables' values
    are noted for the scan to look for."""
    token = token or stack.token(**claims)
    if hasattr(stack, "tokens"):
        stack.tokens.append(token)
        if isinstance(body, list):
            stack.emails.update(o["value"] for o in body
                                if isinstance(o, dict) and "value" in o)
    return requests.post(stack.url + path, json=body, timeout=timeout,
                         headers={"Authorization": f"Bearer {token}",
                                  **(headers or {})})


def answer(stack: Any, path: str, body: Any = None, **kwargs: Any
           ) -> dict[str, Any]:
    """`post`, then the envelope of its HTTP 200 JSON answer."""
    response = post(stack, path, body, **kwargs)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    found: dict[str, Any] = response.json()
    return found


def wait_until(condition: Callable[[], bool], timeout: float = 5) -> None:
    """Wait until *condition* holds (checked every 10 ms), at most
    *timeout* seconds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)
