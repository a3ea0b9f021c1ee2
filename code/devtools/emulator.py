"""A SpyCloud enterprise-v2 emulator for demos, tests and benchmarks: the
HTTP server and its faults over `synthetic.py`'s data.

Serves, under `/enterprise-v2/`, SpyCloud's endpoints as
`docs/spycloud.md` describes them:

- `breach/data/{emails,usernames,ips,domains}/{value}` and
  `breach/data/watchlist`: deterministic synthetic records, 1,000 a page,
  with opaque cursors (a blank first one is accepted) in the
  `{"cursor", "hits", "results"}` envelope, filtered by `since`, `until`
  (publish day), `severity` (a comma list), `source_id` and `type`
  (`infected`, `corporate`);
- `breach/catalog/{ids}`: comma-separated ids or uuids (at most 10),
  unknown ones left out of `results`;
- `watchlist/{identifier}`: what the relay's health check calls;
- any other path: 403 `Missing Authentication Token`, as AWS API Gateway
  answers.

`X-API-Key` must equal the emulator's key, else 403 with
`SpyCloud-Error: Invalid API key`.

The data is `synthetic.py`'s (its docstring lists the demo identifiers).

Fault injection, per email (local part `fault-<name>`, e.g.
`fault-500@demo.test`; `once-<name>` fails only the first call for that
email) or per request (header `X-Emulator-Fault: <name>`):
`slow` (2 s latency), `throttle` (429 `TooManyRequestsException`,
`Retry-After: 0`), `quota` (429 `LimitExceededException`), `500`, `502`,
`504`, `badjson` (truncated JSON), `html` (an HTML page), `hang` (no answer
for 60 s), `trickle` (headers at once, then the body a byte every 0.5 s),
`drop` (connection closed without an answer). `tls=(cert, key)` serves
HTTPS.
`--latency-ms` adds latency to every call; `--fault-rate` injects random
retryable faults; `--also-key` accepts another customer's key.
`GET /_emulator/stats` counts calls (each once, by endpoint; faults also
by name) and the peak of calls in flight per key (by a digest of the key);
`POST /_emulator/reset` zeroes them.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import random
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .loopback import LoopbackServer
from .synthetic import UUIDS, catalog, find

PREFIX = "/enterprise-v2/"
PAGE_SIZE = 1000
MAX_CATALOG_IDS = 10
DEFAULT_KEY = "demo-key"
SELECTORS = ("emails", "usernames", "ips", "domains")
FAULTS = (
    "slow", "throttle", "quota", "500", "502", "504", "badjson", "html",
    "hang", "trickle", "drop",
)
RANDOM_FAULTS = ("throttle", "500", "502", "504", "drop")


def matches(record: dict[str, Any], query: dict[str, str]) -> bool:
    """Apply SpyCloud's filters: since, until (publish day), severity (a
    comma list), source_id and type."""
    day = record["spycloud_publish_date"][:10]
    if "since" in query and day < query["since"]:
        return False
    if "until" in query and day > query["until"]:
        return False
    if "severity" in query and str(record.get("severity")) not in \
            query["severity"].split(","):
        return False
    if "source_id" in query and str(record["source_id"]) != query["source_id"]:
        return False
    infected = "infected_machine_id" in record
    return {"infected": infected, "corporate": not infected}.get(
        query.get("type", ""), True)


FILTERS = ("since", "until", "severity", "source_id", "type")


@functools.lru_cache(maxsize=64)
def page(selector: str, value: str, filters: tuple[tuple[str, str], ...],
         offset: int) -> bytes:
    """Return one serialized page of an identifier's records (kept: pages
    of 1,000 records take milliseconds to build, SpyCloud's take none)."""
    query = dict(filters)
    found = [r for r in find(selector, value) if matches(r, query)]
    end = offset + PAGE_SIZE
    token = _identity(selector, value, filters)
    return json.dumps({
        "cursor": _cursor(token, end) if end < len(found) else "",
        "hits": len(found),
        "results": found[offset:end],
    }).encode()


def _identity(selector: str, value: str,
              filters: tuple[tuple[str, str], ...]) -> str:
    return hashlib.sha256(repr((selector, value, filters)).encode()
                          ).hexdigest()[:12]


def _cursor(identity: str, offset: int) -> str:
    token = json.dumps({"e": identity, "o": offset})
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def _offset(identity: str, cursor: str) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        token = json.loads(raw)
        if token["e"] != identity:
            return None
        return int(token["o"])
    except (ValueError, KeyError, TypeError):
        return None


# --- the server ------------------------------------------------------------

def _known(kind: str, arg: str) -> bool:
    """Say whether a path is one of SpyCloud's (with its identifier)."""
    if kind == "breach/data/watchlist":
        return True
    if kind in ("breach/catalog", "watchlist") or kind in {
            f"breach/data/{selector}" for selector in SELECTORS}:
        return bool(arg)
    return False


def key_label(key: str) -> str:
    """Name a key in the statistics without showing it."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class Emulator(LoopbackServer):
    """The emulator's state: its key, injected behaviour and call counts."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 api_key: str = DEFAULT_KEY, latency_ms: float = 0,
                 fault_rate: float = 0.0, seed: int = 0,
                 more_keys: Sequence[str] = (),
                 tls: tuple[str, str] | None = None) -> None:
        self.api_keys = frozenset((api_key, *more_keys))
        self.latency = latency_ms / 1000
        self.fault_rate = fault_rate
        self.calls: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.queries: dict[str, dict[str, str]] = {}
        self._random = random.Random(seed)  # noqa: S311
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._once: set[str] = set()
        super().__init__(
            type("Handler", (_Handler,), {"emulator": self}), host, port, tls
        )

    @property
    def url(self) -> str:
        """Return the base URL the relay's SPYCLOUD_API_URL should hold."""
        return f"{self.scheme}://{self.address}{PREFIX}"

    def stop(self) -> None:
        """Stop serving; hanging answers end at once."""
        self._stop.set()
        super().stop()

    def count(self, kind: str, call: bool = True) -> None:
        """Count one call to *kind* (or, with call=False, one more fact about
        a call already counted, such as its fault)."""
        with self._lock:
            self.calls[kind] += 1
            if call:
                self.calls["total"] += 1

    def record_query(self, kind: str, query: dict[str, str]) -> None:
        """Keep the last query string seen per endpoint, for tests."""
        with self._lock:
            self.queries[kind] = dict(query)

    def enter(self, key: str) -> str:
        """Note one more call in flight for *key*; return its label."""
        label = key_label(key)
        with self._lock:
            self.in_flight[label] += 1
            self.peak[label] = max(self.peak[label], self.in_flight[label])
        return label

    def leave(self, label: str) -> None:
        with self._lock:
            self.in_flight[label] -= 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"calls": dict(self.calls), "peak_in_flight": dict(self.peak),
                    "last_query": dict(self.queries)}

    def random_fault(self) -> str | None:
        with self._lock:
            if self.fault_rate and self._random.random() < self.fault_rate:
                return self._random.choice(RANDOM_FAULTS)
        return None

    def first_time(self, name: str) -> bool:
        with self._lock:
            if name in self._once:
                return False
            self._once.add(name)
            return True

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.peak.clear()
            self._once.clear()

    def hang(self, connection: socket.socket, seconds: float) -> None:
        """Answer nothing for *seconds*, or until the client hangs up or
        the emulator stops (so calls in flight count only live ones)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stop.is_set():
            readable, _, _ = select.select([connection], [], [], 0.1)
            if readable and not connection.recv(1, socket.MSG_PEEK):
                return

    def pause(self, seconds: float) -> bool:
        """Wait *seconds*; say whether the emulator is stopping."""
        return self._stop.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    emulator: Emulator
    trickle = False  # this answer's body goes out a byte at a time
    protocol_version = "HTTP/1.1"
    server_version = "SpyCloudEmulator/1.0"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle and
    # delayed ACKs would add ~40 ms to every answer.
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/_emulator/reset":
            self.emulator.reset()
            self._json(200, {"reset": True})
        else:
            self._json(404, {"message": "Not Found"})

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if url.path == "/_emulator/stats":
            self._json(200, self.emulator.stats())
            return
        if not url.path.startswith(PREFIX):
            self._json(404, {"message": "Not Found"})
            return
        label = self.emulator.enter(self.headers.get("X-API-Key", ""))
        try:
            self._api(url.path[len(PREFIX):], url.query)
        finally:
            self.emulator.leave(label)

    def _api(self, rest: str, query_string: str) -> None:
        if rest == "breach/data/watchlist":
            kind, arg = rest, ""
        else:
            kind, _, arg = rest.rpartition("/")
            arg = unquote(arg)
        if not _known(kind, arg):  # SpyCloud sits behind AWS API Gateway
            self.emulator.count("unknown path")
            self._json(403, {"message": "Missing Authentication Token"})
            return
        self.emulator.count(kind)
        if self.headers.get("X-API-Key") not in self.emulator.api_keys:
            self._json(403, {"message": "Forbidden"},
                       {"SpyCloud-Error": "Invalid API key"})
            return
        fault = self._fault(arg if kind.startswith("breach/data/") else "")
        if self.emulator.latency:
            time.sleep(self.emulator.latency)
        if fault and self._inject(fault):
            self.emulator.count("fault " + fault, call=False)
            return
        query = {k: v[0] for k, v in parse_qs(query_string,
                                              keep_blank_values=True).items()}
        self.emulator.record_query(kind, query)
        if kind.startswith("breach/data/"):
            self._records(kind.rpartition("/")[2] if arg else "watchlist",
                          arg, query)
        elif kind == "breach/catalog":
            self._catalogs(arg)
        else:
            self._list([{"identifier": arg, "type": "domain"}])

    def _fault(self, email: str) -> str | None:
        header = self.headers.get("X-Emulator-Fault")
        if header:
            return header
        local = email.partition("@")[0].lower()
        if local.startswith("fault-"):
            return local[len("fault-"):]
        if local.startswith("once-") and self.emulator.first_time(email):
            return local[len("once-"):]
        return self.emulator.random_fault()

    def _inject(self, fault: str) -> bool:
        """Misbehave as *fault* says; return False to answer normally."""
        if fault == "slow":
            time.sleep(2)
            return False
        if fault == "throttle":
            self._json(429, {"message": "Too Many Requests"}, {
                "x-amzn-ErrorType": "TooManyRequestsException",
                "Retry-After": "0",
            })
        elif fault == "quota":
            self._json(429, {"message": "Limit Exceeded"},
                       {"x-amzn-ErrorType": "LimitExceededException"})
        elif fault in ("500", "502", "504"):
            self._json(int(fault), {"message": "Internal server error"})
        elif fault == "badjson":
            self._raw(200, b'{"cursor": "", "hits": 3, "results": [{"doc',
                      "application/json")
        elif fault == "html":
            self._raw(200, b"<html><body>Gateway error</body></html>",
                      "text/html")
        elif fault == "hang":
            self.emulator.hang(self.connection, 60)
            self.close_connection = True
        elif fault == "trickle":
            self.trickle = True
            return False
        elif fault == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            return False
        return True

    def _records(self, selector: str, value: str,
                 query: dict[str, str]) -> None:
        if selector == "emails":
            value = value.lower()  # SpyCloud indexes emails lower-cased
        filters = tuple(sorted((k, v) for k, v in query.items()
                               if k in FILTERS and v))
        cursor = query.get("cursor", "")
        offset = _offset(_identity(selector, value, filters), cursor) \
            if cursor else 0
        if offset is None:
            self._json(400, {"message": "Invalid cursor"})
            return
        self._raw(200, page(selector, value, filters, offset),
                  "application/json")

    def _catalogs(self, ids: str) -> None:
        parts = [p.strip() for p in ids.split(",") if p.strip()]
        if len(parts) > MAX_CATALOG_IDS:
            self._json(400, {"message": "Invalid catalog id list"})
            return
        found = []
        for part in parts:
            if part.isdigit():
                doc = catalog(int(part))
            else:  # a uuid of a catalog generated before
                doc = catalog(UUIDS[part]) if part in UUIDS else None
            if doc:
                found.append(doc)
        self._list(found)

    def _list(self, results: list, hits: int | None = None,
              cursor: str = "") -> None:
        self._json(200, {"cursor": cursor,
                         "hits": len(results) if hits is None else hits,
                         "results": results})

    def _json(self, status: int, doc: Any,
              headers: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(doc).encode(), "application/json",
                  headers)

    def _raw(self, status: int, data: bytes, content_type: str,
             headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not self.trickle:
            self.wfile.write(data)
            return
        self.emulator.count("fault trickle", call=False)
        self.close_connection = True
        try:
            for offset in range(len(data)):
                self.wfile.write(data[offset:offset + 1])
                self.wfile.flush()
                if self.emulator.pause(0.5):
                    return
        except OSError:  # the client gave up
            return


def main(argv: Sequence[str] | None = None) -> None:
    """Run the emulator in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m devtools.emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8710)
    parser.add_argument("--api-key", default=DEFAULT_KEY)
    parser.add_argument("--also-key", action="append", default=[],
                        help="another key the emulator accepts")
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    emulator = Emulator(args.host, args.port, args.api_key, args.latency_ms,
                        args.fault_rate, args.seed, args.also_key)
    print(f"SpyCloud emulator at {emulator.url}", flush=True)
    emulator.serve()


if __name__ == "__main__":
    main()
