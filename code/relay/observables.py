"""The observables of an observe or refer request (its body's shape is
checked by `bodies.py`): each value checked for its type, then reduced to
the distinct observables to look up (docs/xdr.md, "Observable types")."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import text
from .errors import RelayError, warning

# Invalid values named one by one in an answer; the rest are counted, so a
# large body of bad values cannot make a large answer.
MAX_PROBLEMS = 5
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
MAX_USERNAME_LENGTH = 256
# A plausible address: one @, a local part without spaces or controls, and a
# dotted domain of letters, digits and hyphens (IDNs arrive as punycode or
# Unicode letters). Anything else is never sent to SpyCloud.
EMAIL = re.compile(
    r"[^\s@\x00-\x1f\x7f]{1,64}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+"
    r"(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})",
    re.UNICODE | re.IGNORECASE,
)


MAX_DOMAIN_LENGTH = 253
LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class Observable:
    """One observable to look up: as sent, and as SpyCloud is asked."""

    type: str
    value: str  # as the analyst sent it: the answer's entities carry it
    query: str  # normalised: what SpyCloud is asked, and the identity


@dataclass(frozen=True)
class Query:
    """The observables one request asks about, and why others were left out."""

    observables: tuple[Observable, ...]
    warnings: tuple[RelayError, ...]


def supported(observables: Sequence[dict[str, str]], cap: int) -> Query:
    """Keep supported, valid, distinct observables in order, at most *cap*.

    Each value is checked for its type before anything is sent; emails
    compare lower-cased and addresses normalised, and the first spelling
    sent is the one answered.
    """
    wanted: dict[tuple[str, str], Observable] = {}
    notes: list[RelayError] = []
    invalid = 0
    for observable in observables:
        kind = observable["type"].strip().lower()
        check = CHECKS.get(kind)
        if check is None:
            continue
        value = observable["value"]
        query = check(value)
        if query is None:
            invalid += 1
            if invalid <= MAX_PROBLEMS:
                shown = value if len(value) <= 80 else value[:77] + "..."
                notes.append(warning(
                    "invalid argument",
                    f"{shown!r} is not a valid {NAMES[kind]}; it was not"
                    " looked up.",
                ))
            continue
        wanted.setdefault((kind, query), Observable(kind, value, query))
    if invalid > MAX_PROBLEMS:
        notes.append(warning(
            "invalid argument",
            f"{invalid - MAX_PROBLEMS:,} more observables were not valid for"
            " their type; they were not looked up.",
        ))
    chosen = tuple(wanted.values())
    if len(chosen) > cap:
        notes.append(warning(
            "too many observables",
            f"Only the first {cap} of {len(chosen)} observables were looked"
            " up.",
        ))
        chosen = chosen[:cap]
    return Query(chosen, tuple(notes))


def email(value: str) -> str | None:
    """Return the address lower-cased (SpyCloud indexes emails so), or None
    if it is not a plausible email."""
    if len(value) > MAX_EMAIL_LENGTH or not EMAIL.fullmatch(value) \
            or not text.visible(value):  # no zero-width or bidi marks
        return None
    return value.lower()


def domain(value: str) -> str | None:
    """Return the domain lower-cased, one trailing dot dropped and an IDN
    as punycode, or None unless it has at least two labels of 1-63
    letters, digits or hyphens (none at either end of a label), at most
    253 characters, and a last label that is not a number: no wildcard,
    scheme, path, port or space."""
    name = value.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = name.split(".")
    if len(name) > MAX_DOMAIN_LENGTH or len(labels) < 2 \
            or labels[-1].isdigit() \
            or not all(LABEL.fullmatch(label) for label in labels):
        return None
    return name


def username(value: str) -> str | None:
    """Return the username, or None if it is empty, too long, holds a `/`
    or anything unprintable, or is made only of dots (a `.` or `..` path
    segment would be normalised away, changing the SpyCloud path)."""
    if not value.strip() or len(value) > MAX_USERNAME_LENGTH or "/" in value \
            or not value.strip("."):
        return None
    return value if value.isprintable() else None


def ipv4(value: str) -> str | None:
    """Return a single IPv4 address in its normal form, or None; one
    written IPv4-mapped (`::ffff:a.b.c.d`) is that IPv4 address."""
    address = _address(value)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped \
            and not address.scope_id:
        return str(address.ipv4_mapped)
    return str(address) if isinstance(address, ipaddress.IPv4Address) \
        else None


def ipv6(value: str) -> str | None:
    """Return a single IPv6 address, compressed, or None; an IPv4-mapped
    address (`::ffff:a.b.c.d`) is looked up as the IPv4 address it is."""
    address = _address(value)
    if not isinstance(address, ipaddress.IPv6Address) or address.scope_id:
        return None
    if address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return address.compressed


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:  # not an address: a CIDR, a name, a path
        return None


CHECKS: dict[str, Callable[[str], str | None]] = {
    "email": email, "user": username, "ip": ipv4, "ipv6": ipv6,
    "domain": domain,
}
NAMES = {"email": "email address", "user": "username",
         "ip": "IPv4 address", "ipv6": "IPv6 address", "domain": "domain"}
