"""The response body XDR expects: `data` and `errors`, as the contract says."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import RelayError

# The order entity kinds appear in `data`.
KINDS = ("sightings", "indicators", "relationships")


class Bundle:
    """CTIM entities grouped by plural type, each kind `{count, docs}`.

    Every entity appears once, at its first appearance: an indicator of a
    breach shared by several observables is not repeated.
    """

    def __init__(self) -> None:
        self._docs: dict[str, list[dict[str, Any]]] = {}
        self._ids: set[str] = set()

    def add(self, entities: Mapping[str, list[dict[str, Any]]]) -> None:
        """Append entities (plural type → documents) not already held."""
        ids = self._ids
        for kind, docs in entities.items():
            for doc in docs:
                if doc["id"] not in ids:
                    ids.add(doc["id"])
                    self._docs.setdefault(kind, []).append(doc)

    def json(self) -> dict[str, Any]:
        """Return the non-empty kinds in a fixed order."""
        return {
            kind: {"count": len(self._docs[kind]), "docs": self._docs[kind]}
            for kind in KINDS if kind in self._docs
        }


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
