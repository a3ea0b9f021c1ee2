"""The response body XDR expects: `data` and `errors`, as the contract says
(the entities in `data` are written by `jsonio.Bundle`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import RelayError


def body(data: Any = None,
         errors: Iterable[RelayError] = ()) -> dict[str, Any]:
    """Build the envelope: `data` left out when there are only errors."""
    unique = list(dict.fromkeys(errors))
    out: dict[str, Any] = {}
    if data or not unique:
        out["data"] = data if data is not None else {}
    if unique:
        out["errors"] = [error.json() for error in unique]
    return out


def outcome(errors: Iterable[RelayError]) -> str:
    """Sum up an answer for the access log: `ok`, `partial` (warnings) or
    `fatal:<code>` of its first fatal error."""
    errors = list(errors)
    for error in errors:
        if error.type == "fatal":
            return f"fatal:{error.code}"
    return "partial" if errors else "ok"
