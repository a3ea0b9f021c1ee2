"""Pure: an infostealer record → the infected machine and the stolen
login, as observables XDR can investigate (docs/ctim.md, "Pivots").

A record from an infostealer (severity 25, 26 or 30, or one that names
an infected machine) reports the machine (`user_hostname`, `ip_addresses`,
`user_os`, `infected_time`) and where the stolen credential logs in
(`target_url`, `target_domain`). Only what is true and useful becomes an
observable: values checked for their type; private, loopback, link-local,
multicast, reserved and unspecified addresses, placeholders and empty
values left out; each value once; at most `MAX_PIVOTS` per record. Nothing
secret (a password, a cookie, a URL's user, query or fragment) is ever
kept. No I/O here.
"""

from __future__ import annotations

import bisect
import datetime as dt
import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .records import parse_time

MAX_PIVOTS = 10  # observables of one record's machine and login, at most
MAX_URL = 1024  # characters: a longer URL is left out, never cut
INFOSTEALER = 25  # SpyCloud's severities 25, 26 and 30: from infected devices
PLACEHOLDERS = frozenset({"", "n/a", "na", "none", "null", "unknown", "-",
                          "localhost", "undefined", "default"})
# Addresses that lead nowhere on the internet: "this network" and
# unspecified, private (RFC 1918, carrier-grade NAT, unique local),
# loopback, link-local, multicast and reserved. Checked as integer ranges,
# sorted and disjoint, found by bisection: the ipaddress module's own
# properties cost ten times more.
NO_LEAD = {
    version: tuple(sorted((int(n.network_address), int(n.broadcast_address))
                          for n in map(ipaddress.ip_network, networks)))
    for version, networks in (
        (4, ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
             "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
             "224.0.0.0/4", "240.0.0.0/4")),
        (6, ("::/8", "fc00::/7", "fe80::/10", "ff00::/8")),
    )
}
_FIRSTS = {version: [first for first, _ in ranges]
           for version, ranges in NO_LEAD.items()}
MAPPED = bytes(10) + b"\xff\xff"  # the prefix of an IPv4-mapped address
# A host name of RFC 1123 labels (not all digits: that is an address).
HOSTNAME = re.compile(r"(?=.{1,253}$)(?![\d.]+$)"
                      r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
                      r"(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


@dataclass(frozen=True)
class Machine:
    """The infected machine a record reports, as observables."""

    observables: tuple[dict[str, str], ...]  # hostname, ip, ipv6
    os: str | None
    infected: dt.datetime | None


@dataclass(frozen=True)
class Pivots:
    """What one infostealer record lets an analyst investigate next."""

    machine: Machine | None
    targets: tuple[dict[str, str], ...]  # url, domain


def of(fields: Mapping[str, Any], severity: int | None,
       machine_id: str | None) -> Pivots | None:
    """Return the pivots of a record's *fields*, or None if it is not an
    infostealer's or names nothing worth investigating."""
    if not machine_id and (severity or 0) < INFOSTEALER:
        return None
    found: dict[tuple[str, str], dict[str, str]] = {}

    def keep(kind: str, value: str | None) -> None:
        if value is not None and len(found) < MAX_PIVOTS:
            found.setdefault((kind, value), {"type": kind, "value": value})

    keep("hostname", hostname(fields.get("user_hostname")))
    for address in _listed(fields.get("ip_addresses")):
        public = ip(address)
        if public is not None:
            keep(*public)
    machine = list(found.values())
    url = target_url(fields.get("target_url"))
    keep("url", url)
    keep("domain", domain(fields.get("target_domain"))
         or domain(urlsplit(url).hostname if url else None))
    if not found:
        return None
    targets = tuple(o for o in found.values()
                    if o["type"] in ("url", "domain"))
    return Pivots(
        Machine(tuple(machine), _value(fields.get("user_os")),
                parse_time(fields.get("infected_time")))
        if machine else None,
        targets)


def hostname(value: Any) -> str | None:
    """Return a valid host name (RFC 1123 labels), or None."""
    if not isinstance(value, str):
        return None
    name = value.strip().rstrip(".")
    if name.lower() in PLACEHOLDERS or not HOSTNAME.fullmatch(name):
        return None
    return name


def domain(value: Any) -> str | None:
    """Return a valid domain name (a dotted host name), lower-cased."""
    name = hostname(value)
    return name.lower() if name and "." in name else None


def ip(value: Any) -> tuple[str, str] | None:
    """Return (`ip` or `ipv6`, the address) for a public address, else
    None: private, loopback, link-local, multicast, reserved, unspecified
    and malformed ones are no lead. (Parsed with `inet_pton`: the
    ipaddress module costs several times more, on every record.)"""
    if not isinstance(value, str):
        return None
    text = value.strip()
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        packed = socket.inet_pton(family, text)
    except (OSError, ValueError):
        return None
    if family == socket.AF_INET6 and packed[:12] == MAPPED:
        family, packed = socket.AF_INET, packed[12:]  # ::ffff:a.b.c.d
    version = 4 if family == socket.AF_INET else 6
    number = int.from_bytes(packed, "big")
    # The last range starting at or below the number is the only one that
    # can hold it.
    at = bisect.bisect_right(_FIRSTS[version], number) - 1
    if at >= 0 and number <= NO_LEAD[version][at][1]:
        return None
    return ("ip" if version == 4 else "ipv6"), socket.inet_ntop(family, packed)


def target_url(value: Any) -> str | None:
    """Return an http(s) URL without its user, password, query or
    fragment (they may hold secrets), or None."""
    if not isinstance(value, str) or len(value) > MAX_URL:
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host \
            or not (hostname(host) or ip(host)):
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{parts.path or '/'}"


def _listed(value: Any) -> Iterable[Any]:
    if isinstance(value, str):
        return value.split(",")
    return value if isinstance(value, list) else ()


def _value(value: Any) -> str | None:
    """A field's text, unless it is a placeholder (`N/A`, `unknown`...)."""
    if not isinstance(value, str) or value.strip().lower() in PLACEHOLDERS:
        return None
    return value.strip()[:1024]
