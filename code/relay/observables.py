"""The observe request body: validated, then reduced to the emails to query."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from .errors import InvalidArgumentError, RelayError, warning

SUPPORTED_TYPES = frozenset({"email"})
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
# A plausible address: one @, a local part without spaces or controls, and a
# dotted domain of letters, digits and hyphens (IDNs arrive as punycode or
# Unicode letters). Anything else is never sent to SpyCloud.
EMAIL = re.compile(
    r"[^\s@\x00-\x1f\x7f]{1,64}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+"
    r"(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})",
    re.UNICODE | re.IGNORECASE,
)


class ObservableSchema(Schema):
    """One observable: a non-empty string type and value."""

    class Meta:
        unknown = EXCLUDE

    type = fields.String(required=True, validate=validate.Length(min=1))
    value = fields.String(required=True, validate=validate.Length(min=1))


@dataclass(frozen=True)
class Observable:
    """One observable to look up: as sent, and as SpyCloud is asked."""

    type: str
    value: str  # as the analyst sent it: the answer's entities carry it
    query: str  # normalised (emails lower-cased): the lookup and its identity


@dataclass(frozen=True)
class Query:
    """The observables one request asks about, and why others were left out."""

    observables: tuple[Observable, ...]
    warnings: tuple[RelayError, ...]


def load(payload: Any) -> list[dict[str, str]]:
    """Validate the body; raise InvalidArgumentError saying what is wrong."""
    if payload is None:
        raise InvalidArgumentError("The body is not a JSON list.")
    try:
        return ObservableSchema(many=True).load(payload)
    except ValidationError as exc:
        raise InvalidArgumentError(json.dumps(exc.messages)) from None


def emails(observables: Sequence[dict[str, str]], cap: int) -> Query:
    """Keep supported, plausible, distinct emails in order, at most *cap*.

    Emails compare lower-cased (SpyCloud indexes them so); the first
    spelling sent is the one answered.
    """
    wanted: dict[str, Observable] = {}
    notes: list[RelayError] = []
    for observable in observables:
        if observable["type"].strip().lower() not in SUPPORTED_TYPES:
            continue
        value = observable["value"]
        query = value.lower()
        if query in wanted:
            continue
        if len(value) > MAX_EMAIL_LENGTH or not EMAIL.fullmatch(value):
            shown = value if len(value) <= 80 else value[:77] + "..."
            notes.append(warning(
                "invalid argument",
                f"{shown!r} is not a valid email address; it was not"
                " looked up.",
            ))
            continue
        wanted[query] = Observable("email", value, query)
    chosen = tuple(wanted.values())
    if len(chosen) > cap:
        notes.append(warning(
            "too many observables",
            f"Only the first {cap} of {len(chosen)} emails were looked up.",
        ))
        chosen = chosen[:cap]
    return Query(chosen, tuple(notes))
