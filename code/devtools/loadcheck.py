"""Load with faults: many requests, concurrent clients, nothing lost or mixed.

Sends `--requests` observe calls from `--clients` threads to a relay under
gunicorn while the emulator injects `--fault-rate` random retryable faults
(429, 500, 502, 504, dropped connections). Each request asks about 1-3
emails drawn from a pool; every answer must be a valid envelope, and every
sighting in it must belong to one of that request's own emails and be one
of the records the emulator holds for it (newest 100). A request without
errors must hold exactly those sightings.

    cd code && python -m devtools.loadcheck [--requests 500 --clients 32]
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from . import synthetic
from .stack import Stack

LIMIT = 100
POOL = [f"load{n}@corp.example" for n in range(40)] + [
    "jane.doe@demo.test", "heavy@demo.test", "severities@demo.test",
    "nobody@demo.test", "n20.b10.s3.u1@bench.test",
]


@functools.lru_cache(maxsize=None)
def expected(email: str) -> frozenset[str]:
    """Return the document ids the relay must answer for *email* (when an
    email has more than LIMIT records, ties on the date at the cut make the
    set ambiguous: then only its size is compared)."""
    newest = sorted(synthetic.records(email), reverse=True,
                    key=lambda r: r["spycloud_publish_date"])
    return frozenset(r["document_id"] for r in newest[:LIMIT])


@dataclass
class Report:
    requests: int = 0
    clean: int = 0
    with_errors: int = 0
    problems: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    error_codes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        lat = sorted(self.latencies)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return (
            f"{self.requests} requests in {self.seconds:.1f} s"
            f" ({self.requests / self.seconds:.0f} req/s):"
            f" {self.clean} complete, {self.with_errors} with errors"
            f" {self.error_codes}, {len(self.problems)} invalid or mixed;"
            f" p50 {statistics.median(lat) * 1000:.0f} ms,"
            f" p99 {p99 * 1000:.0f} ms"
        )


def check(body: object, emails: Sequence[str]) -> tuple[list[str], bool]:
    """Return the problems of one answer, and whether it had errors."""
    if not isinstance(body, dict) or not set(body) <= {"data", "errors"} \
            or not body:
        return [f"not an envelope: {str(body)[:200]}"], False
    errors = body.get("errors", [])
    problems = [f"bad error {e}" for e in errors
                if set(e) != {"type", "code", "message"}
                or e["type"] not in ("fatal", "warning")]
    got: dict[str, set[str]] = {}
    for doc in body.get("data", {}).get("sightings", {}).get("docs", []):
        email = doc["observables"][0]["value"]
        got.setdefault(email, set()).add(doc["external_ids"][0])
    for email, ids in got.items():
        if email not in emails:
            problems.append(f"sighting of another request's {email}")
        elif not ids <= {r["document_id"] for r in synthetic.records(email)}:
            problems.append(f"foreign record in {email}")
    fatal = any(e["type"] == "fatal" for e in errors)
    if not fatal:
        for email in emails:
            want, have = expected(email), got.get(email, set())
            exact = len(synthetic.records(email)) <= LIMIT
            if (have != want) if exact else (len(have) != len(want)):
                problems.append(f"{email}: {len(have)} sightings,"
                                f" expected {len(want)}")
    return problems, bool(errors)


def run(stack: Stack, count: int, clients: int, seed: int = 1) -> Report:
    """Send *count* requests from *clients* threads; check every answer."""
    rng = random.Random(seed)  # noqa: S311 (test data)
    work = [rng.sample(POOL, rng.randint(1, 3)) for _ in range(count)]
    token = stack.token()
    report = Report(requests=count)
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(
        pool_maxsize=clients))

    def one(emails: list[str]) -> tuple[float, object]:
        started = time.perf_counter()
        try:
            response = session.post(
                stack.url + "/observe/observables", timeout=60,
                json=[{"type": "email", "value": e} for e in emails],
                headers={"Authorization": f"Bearer {token}"})
            body: object = (response.json() if response.status_code == 200
                            else f"HTTP {response.status_code}")
        except (requests.RequestException, ValueError) as exc:
            body = f"{type(exc).__name__}: {exc}"
        return time.perf_counter() - started, body

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(one, work))
    report.seconds = time.perf_counter() - started
    for emails, (elapsed, body) in zip(work, answers):
        report.latencies.append(elapsed)
        problems, had_errors = check(body, emails)
        report.problems.extend(problems)
        if had_errors:
            report.with_errors += 1
            for error in body.get("errors", []):  # type: ignore[union-attr]
                report.error_codes[error["code"]] = \
                    report.error_codes.get(error["code"], 0) + 1
        else:
            report.clean += 1
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.loadcheck")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    args = parser.parse_args(argv)
    # Every request reaches SpyCloud (and its faults): no records cache.
    env = {"SPYCLOUD_RETRY_WAIT": "0.02", "SPYCLOUD_RETRY_WAIT_MAX": "0.2",
           "RECORDS_CACHE_TTL": "0"}
    with Stack(fault_rate=args.fault_rate, env=env,
               emulator_process=True) as stack:
        report = run(stack, args.requests, args.clients)
        fetches = stack.jwks.fetches
        workers = len(stack.worker_pids())
        calls = requests.get(stack.emulator.url.replace(
            "/enterprise-v2/", "/_emulator/stats"), timeout=5).json()["calls"]
    faults = {k: v for k, v in calls.items() if k.startswith("fault")}
    print(report.summary())
    print(f"SpyCloud calls: {calls.get('total', 0)}, faults injected:"
          f" {sum(faults.values())} {faults}")
    print(f"JWKS fetches: {fetches} ({workers} gunicorn worker(s))")
    for problem in report.problems[:20]:
        print("  ", problem)
    raise SystemExit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
