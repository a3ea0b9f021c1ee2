"""`REDIS_URL`, checked: which Redis it names and how to reach it.

One Redis (`redis://`, `rediss://`, `unix://`, as redis-py reads them), a
primary that Sentinel names (`redis+sentinel://` or
`rediss+sentinel://[user:password@]host:port[,host:port...]/<master>[/db]`)
or a Redis Cluster (`redis+cluster://` or
`rediss+cluster://[user:password@]host:port[,host:port...]`, seed nodes).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from redis.connection import parse_url

SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel",
           "redis+cluster", "rediss+cluster")


@dataclass(frozen=True)
class Target:
    """Where `REDIS_URL` points, checked: one Redis (*url* as redis-py
    reads it), the primary a list of sentinels names, or a cluster."""

    kind: str  # "single", "sentinel" or "cluster"
    url: str
    tls: bool = False
    nodes: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    master: str | None = None
    db: int = 0


ALLOWED = ("a redis://, rediss:// or unix:// URL, redis+sentinel://"
           "host:port[,host:port...]/<master name>[/db] or"
           " redis+cluster://host:port[,host:port...] (rediss+ for TLS)")


def target(url: str) -> Target:
    """Check a `REDIS_URL`; raise ValueError saying what is allowed."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(ALLOWED)
    if "+" not in scheme:
        try:
            parse_url(url)  # type: ignore[no-untyped-call]
        except ValueError:
            raise ValueError(ALLOWED) from None
        if scheme != "unix" and not parts.hostname:
            raise ValueError(ALLOWED)
        return Target("single", url, tls=scheme == "rediss")
    kind = scheme.split("+")[1]
    hosts = parts.netloc.rpartition("@")[2]
    nodes = tuple(_node(item) for item in hosts.split(",") if item)
    path = [p for p in parts.path.split("/") if p]
    if not nodes or (kind == "sentinel" and not path) \
            or len(path) > (2 if kind == "sentinel" else 1):
        raise ValueError(ALLOWED)
    db = path[1] if kind == "sentinel" and len(path) == 2 else \
        (path[0] if kind == "cluster" and path else "0")
    if not (db.isascii() and db.isdecimal()) or (kind == "cluster"
                                                 and db != "0"):
        raise ValueError(ALLOWED)
    credentials = parts.netloc.rpartition("@")[0]
    user, _, password = credentials.partition(":")
    return Target(kind, url, tls=scheme.startswith("rediss"), nodes=nodes,
                  username=unquote(user) or None,
                  password=unquote(password) or None,
                  master=unquote(path[0]) if kind == "sentinel" else None,
                  db=int(db))


def _node(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdecimal() or not 0 < int(port) < 65536:
        raise ValueError(ALLOWED)
    return host, int(port)
