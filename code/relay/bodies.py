"""Request bodies checked at the boundary: their shape, with the words
marshmallow would use (the relay's answers kept them when it stopped using
marshmallow: validating a 1 MB body from anyone, before any token is
checked, must cost one pass and no object per item).

`observables` checks the list observe and refer take, `tile` the object
the tile routes take; the values are the caller's to check
(`observables.py`, `tiles.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidArgumentError

# Problems named one by one in an answer; the rest are counted, so a large
# body of bad items cannot make a large answer.
MAX_PROBLEMS = 5
MAX_TILE_FIELDS = 8  # a tile's body has two; more is refused unread
WRONG_TYPE = "Invalid input type."
_MISSING_FIELD = "Missing data for required field."
_NULL = "Field may not be null."
_EMPTY = "Shorter than minimum length 1."
_NOT_STRING = "Not a valid string."
_UNKNOWN = "Unknown field."
_MISSING = object()


def observables(payload: Any) -> list[dict[str, str]]:
    """Validate the body: a list of objects, each with a non-empty string
    `type` and `value`; raise InvalidArgumentError saying what is wrong.

    One pass, no per-item objects: a large body of bad items (from anyone,
    before any token is checked) costs one read, and the message names the
    first few problems and counts the rest, so it stays small.
    """
    if payload is None:
        raise InvalidArgumentError("The body is not a JSON list.")
    if not isinstance(payload, list):
        raise InvalidArgumentError(json.dumps({"_schema": [WRONG_TYPE]}))
    problems: dict[str, Any] = {}
    bad = 0
    for index, item in enumerate(payload):
        found = _problems(item)
        if found:
            bad += 1
            if len(problems) < MAX_PROBLEMS:
                problems[str(index)] = found
    if bad:
        more = bad - len(problems)
        raise InvalidArgumentError(json.dumps(problems) + (
            f" ({more:,} more invalid observables not shown.)" if more else ""))
    return payload


def _problems(item: Any) -> dict[str, list[str]] | None:
    """Say what is wrong with one observable, in marshmallow's words."""
    if not isinstance(item, dict):
        return {"_schema": [WRONG_TYPE]}
    found = {}
    for name in ("type", "value"):
        value = item.get(name, _MISSING)
        if isinstance(value, str) and value:
            continue
        found[name] = [_MISSING_FIELD if value is _MISSING
                       else _NULL if value is None
                       else _EMPTY if value == ""
                       else _NOT_STRING]
    return found or None


def tile(payload: Any, choices: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Check a tile route's body: an object holding exactly the fields of
    *choices* (field → its allowed values), each one of its values; raise
    InvalidArgumentError saying what is wrong. No body is an empty object;
    one of many fields is refused unread."""
    payload = {} if payload is None else payload
    if not isinstance(payload, dict):
        raise InvalidArgumentError(json.dumps({"_schema": [WRONG_TYPE]}))
    if len(payload) > MAX_TILE_FIELDS:
        raise InvalidArgumentError(
            f"The body has {len(payload):,} fields; a tile takes"
            f" {', '.join(choices)}.")
    problems = {name: [problem] for name, allowed in choices.items()
                if (problem := _choice(payload.get(name, _MISSING), allowed))}
    problems.update({name: [_UNKNOWN] for name in payload
                     if name not in choices})
    if problems:
        raise InvalidArgumentError(json.dumps(problems))
    return payload


def _choice(value: Any, allowed: Sequence[str]) -> str | None:
    """Say what is wrong with a field that must be one of *allowed*."""
    if value is _MISSING:
        return _MISSING_FIELD
    if value is None:
        return _NULL
    if not isinstance(value, str):
        return _NOT_STRING
    if value not in allowed:
        return f"Must be one of: {', '.join(allowed)}."
    return None
