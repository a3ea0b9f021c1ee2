"""Pure: an infostealer record → the infected machine and the stolen
login, as observables XDR can investigate (docs/ctim.md, "Pivots").

A record from an infostealer (severity 25 or 26, or one that names an
infected machine) reports the machine (`user_hostname`, `ip_addresses`,
`user_os`, `infected_time`) and where the stolen credential logs in
(`target_url`, `target_domain`). Only what is true and useful becomes an
observable: values checked for their type; private, loopback, link-local,
multicast, reserved and unspecified addresses, placeholders and empty
values left out; each value once; at most `MAX_PIVOTS` per record. Nothing
secret (a password, a cookie, a URL's user, query or fragment) is ever
kept. No I/O here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_PIVOTS = 10  # observables of one record's machine and login, at most
MAX_URL = 1024  # characters: a longer URL is left out, never cut
INFOSTEALER = 25  # SpyCloud's severities 25 and 26: infostealer records
PLACEHOLDERS = frozenset({"", "n/a", "na", "none", "null", "unknown", "-",
                          "localhost", "undefined", "default"})
# Addresses of a home or office network, not of the internet.
INTERNAL = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
    "fc00::/7"))
LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
INFECTED_TIME = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ",
                 "%Y-%m-%dT%H:%M:%S")


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
        Machine(tuple(machine), _text(fields.get("user_os")),
                infected_time(fields.get("infected_time")))
        if machine else None,
        targets)


def hostname(value: Any) -> str | None:
    """Return a valid host name (RFC 1123 labels), or None."""
    if not isinstance(value, str):
        return None
    name = value.strip().rstrip(".")
    if name.lower() in PLACEHOLDERS or len(name) > 253 or _is_address(name):
        return None
    return name if all(LABEL.fullmatch(p) for p in name.split(".")) else None


def domain(value: Any) -> str | None:
    """Return a valid domain name (a dotted host name), lower-cased."""
    name = hostname(value)
    return name.lower() if name and "." in name else None


def ip(value: Any) -> tuple[str, str] | None:
    """Return (`ip` or `ipv6`, the address) for a public address, else
    None: private, loopback, link-local, multicast, reserved, unspecified
    and malformed ones are no lead."""
    if not isinstance(value, str):
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback or address.is_unspecified or address.is_link_local \
            or address.is_multicast or address.is_reserved \
            or any(address in network for network in INTERNAL
                   if network.version == address.version):
        return None
    if isinstance(address, ipaddress.IPv4Address):
        return "ip", str(address)
    return "ipv6", address.compressed


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


def infected_time(value: Any) -> dt.datetime | None:
    """Read when the machine was infected, as UTC, or None."""
    if not isinstance(value, str):
        return None
    for form in INFECTED_TIME:
        try:
            return dt.datetime.strptime(value.strip(), form).replace(
                tzinfo=dt.timezone.utc)
        except ValueError:
            continue
    return None


def _listed(value: Any) -> Iterable[Any]:
    if isinstance(value, str):
        return value.split(",")
    return value if isinstance(value, list) else ()


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or value.strip().lower() in PLACEHOLDERS:
        return None
    return value.strip()[:1024]
