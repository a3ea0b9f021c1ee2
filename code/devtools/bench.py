"""`make bench`: the relay under gunicorn against the emulator, measured.

The relay runs with its shipped defaults (no setting changed). Every
SpyCloud call costs `--latency-ms` (default 50). Per scenario it prints the
median wall time over `--repeat` runs, the floor (SpyCloud round trips ×
latency), their ratio, the SpyCloud calls made, and the relay worker's
peak memory; beside it, the same work done the way the original relay did
it: one call at a time, first page only, one catalog call per record,
0.25 s apart. Then: one customer's one-email lookup while another
customer's 100-email request runs, while 200 connections send their
headers a byte a second, and while that other customer has 100 requests
SpyCloud never answers, each as a ratio to the same lookup alone; the
worker's peak memory growth while 20 emails of 9,000 records each are
answered, and while 100 emails of 1,000 records are answered with
CTR_ENTITIES_LIMIT=1000 (with what it keeps after); a load run with
throughput, p50, p99 and errors.

    cd code && python -m devtools.bench [--latency-ms 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from relay.settings import Settings

from .redis_server import RedisCluster, RedisServer
from .stack import Stack

ORIGINAL_SPACING = 0.25  # seconds the original relay kept between calls
ORIGINAL_LIMIT = 100
CAP = Settings().max_concurrency  # the shipped per-key cap
KEY_B = "bench-key-customer-b"
TILE_KEYS = [f"bench-key-dashboard-{n}" for n in range(20)]
TILE_IDS = ("spycloud-exposure-summary", "spycloud-exposures-by-severity",
            "spycloud-new-exposures", "spycloud-top-breaches",
            "spycloud-most-exposed")


@dataclass
class Row:
    name: str
    round_trips: int
    seconds: float
    calls: int
    peak_mb: float
    original_seconds: float | None = None
    original_calls: int | None = None


def emails(kind: str, run: int) -> list[str]:
    """Return the emails of one run of a scenario (fresh breach sets)."""
    group = 10 + run
    if kind == "cold":
        return [f"n20.b10.s{group}.u0@bench.test"]
    if kind == "warm":
        return [f"n20.b10.s{group}.u1@bench.test"]
    if kind == "batch":
        return [f"n20.b10.s{group}.u{u}@bench.test" for u in range(2, 12)]
    if kind == "hundred":
        return [f"n20.b10.s{group + 400}.u{u}@bench.test" for u in range(100)]
    return [f"n2500.b5.s{group + 50}.u0@bench.test"]


class Bench:
    def __init__(self, stack: Stack, key: str | None = None) -> None:
        self.stack = stack
        self.session = requests.Session()
        self.token = stack.token(key=key) if key else stack.token()
        self.stats_url = stack.emulator.url.replace("/enterprise-v2/",
                                                    "/_emulator/")

    def observe(self, values: Sequence[str]) -> dict:
        return json.loads(self.fetch(values))

    def fetch(self, values: Sequence[str]) -> bytes:
        """POST an observe request; return the body, undecoded."""
        response = self.session.post(
            self.stack.url + "/observe/observables",
            json=[{"type": "email", "value": v} for v in values],
            headers={"Authorization": f"Bearer {self.token}"}, timeout=60,
        )
        response.raise_for_status()
        return response.content

    def calls(self) -> int:
        return self.session.get(self.stats_url + "stats",
                                timeout=5).json()["calls"].get("total", 0)

    def reset(self) -> None:
        self.session.post(self.stats_url + "reset", timeout=5)

    def memory_mb(self, field: str = "VmHWM") -> float:
        """Return the worker's resident memory: its peak (VmHWM) or now."""
        sizes = []
        for pid in self.stack.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    sizes.append(int(line.split()[1]) / 1024)
        return max(sizes, default=0.0)

    def peak_mb(self) -> float:
        return self.memory_mb()

    def reset_peak(self) -> None:
        """Start the worker's peak memory over from its current size."""
        for pid in self.stack.worker_pids():
            Path(f"/proc/{pid}/clear_refs").write_text("5")

    def timed(self, values: Sequence[str]) -> tuple[float, int]:
        # SpyCloud's answers exist before it is asked: have the emulator build
        # its pages first, so the timing is the relay's and the latency's.
        for email in values:
            self.session.get(self.stack.emulator.url
                             + f"breach/data/emails/{email}", timeout=30,
                             headers={"X-API-Key": self.stack.api_key})
        self.reset()
        started = time.perf_counter()
        raw = self.fetch(values)
        elapsed = time.perf_counter() - started
        body = json.loads(raw)
        if any(e["type"] == "fatal" for e in body.get("errors", ())):
            raise RuntimeError(f"relay error: {body['errors']}")
        return elapsed, self.calls()

    def original(self, values: Sequence[str]) -> tuple[float, int]:
        """Do the work as the original relay did: one call at a time, first
        page only, one catalog call per record, calls 0.25 s apart."""
        api = self.stack.emulator.url
        headers = {"X-API-Key": self.stack.api_key}
        calls = 0
        next_call = started = time.perf_counter()

        def call(path: str) -> requests.Response:
            nonlocal calls, next_call
            time.sleep(max(0.0, next_call - time.perf_counter()))
            next_call = time.perf_counter() + ORIGINAL_SPACING
            calls += 1
            return requests.get(api + path, headers=headers, timeout=30)

        for email in values:
            records = call(f"breach/data/emails/{email}").json()["results"]
            newest = sorted(records, reverse=True,
                            key=lambda r: r["spycloud_publish_date"])
            for record in newest[:ORIGINAL_LIMIT]:
                call(f"breach/catalog/{record['source_id']}")
        return time.perf_counter() - started, calls


def scenario(bench: Bench, name: str, round_trips: int, repeat: int,
             original: bool) -> Row:
    times, calls = [], []
    for run in range(repeat):
        if name == "warm":  # the breaches become known through another email
            bench.observe(emails("cold", run + 100))
            values = emails("warm", run + 100)
        elif name == "batch":
            bench.observe(emails("cold", run + 200))
            values = emails("batch", run + 200)
        else:
            values = emails(name, run + (300 if name == "big" else 0))
        elapsed, made = bench.timed(values)
        times.append(elapsed)
        calls.append(made)
    row = Row(name, round_trips, statistics.median(times),
              int(statistics.median(calls)), bench.peak_mb())
    if original and name != "hundred":
        values = emails(name, 900)
        row.original_seconds, row.original_calls = bench.original(values)
    return row


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU the processes *pids* have used, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        # The fields after the command's name (which may hold spaces).
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2]
        utime, stime = fields.split()[11:13]
        total += int(utime) + int(stime)
    return total / ticks


def cpu_per_batch(bench: Bench, batches: int = 40,
                  first: int = 1000) -> tuple[float, int, int]:
    """The relay's CPU (its workers and master) per 10-email batch whose
    breaches are known, over *batches* batches; with the sightings and
    SpyCloud calls of one batch (the emails and breaches of batches
    *first* onwards: new to the relay)."""
    pids = [bench.stack.process.pid, *bench.stack.worker_pids()]
    runs = []
    for run in range(batches):
        bench.observe(emails("cold", first + run))
        values = emails("batch", first + run)
        for email in values:  # the emulator builds its pages first
            bench.session.get(bench.stack.emulator.url
                              + f"breach/data/emails/{email}", timeout=30,
                              headers={"X-API-Key": bench.stack.api_key})
        runs.append(values)
    sightings = calls = 0
    before = cpu_seconds(pids)
    for values in runs:
        bench.reset()
        body = bench.observe(values)
        sightings = body["data"]["sightings"]["count"]
        calls = bench.calls()
    used = cpu_seconds(pids) - before
    return used / batches, sightings, calls


def two_customers(a: Bench, b: Bench, repeat: int) -> tuple[float, float]:
    """Return customer B's one-email latency alone, and while customer A's
    100-email request runs (medians; B's breaches are new each time)."""
    alone, loaded = [], []
    for run in range(repeat):
        alone.append(b.timed([f"n20.b10.s{600 + run}.u0@bench.test"])[0])
    for run in range(repeat):
        values = emails("hundred", 700 + run)
        with ThreadPoolExecutor(1) as pool:
            big = pool.submit(a.fetch, values)
            time.sleep(0.1)  # A's request is under way
            started = time.perf_counter()
            b.fetch([f"n20.b10.s{800 + run}.u0@bench.test"])
            loaded.append(time.perf_counter() - started)
            if big.done():
                raise RuntimeError("A's request ended before B's was timed")
            big.result()
    return statistics.median(alone), statistics.median(loaded)


def b_alone(b: Bench, repeat: int, group: int) -> float:
    """Return customer B's one-email latency alone (median, new breaches)."""
    return statistics.median(
        b.timed([f"n20.b10.s{group + run}.u0@bench.test"])[0]
        for run in range(repeat))


def b_during(b: Bench, repeat: int, group: int) -> float:
    """Return customer B's one-email latency now (median, new breaches)."""
    times = []
    for run in range(repeat):
        started = time.perf_counter()
        b.fetch([f"n20.b10.s{group + run}.u0@bench.test"])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def slow_clients(b: Bench, repeat: int) -> tuple[float, float]:
    """Return B's latency alone, and while 200 connections send their
    headers a byte a second."""
    alone = b_alone(b, repeat, 1100)
    host, port = b.stack.url.removeprefix("http://").split(":")
    slow = [socket.create_connection((host, int(port))) for _ in range(200)]
    stop = threading.Event()

    def drip() -> None:
        for sock in slow:
            sock.sendall(b"POST /observe/observables HTTP/1.1\r\nX-Slow: ")
        while not stop.wait(1):
            for sock in slow:
                sock.send(b"s")

    dripping = threading.Thread(target=drip)
    dripping.start()
    try:
        time.sleep(0.5)  # every slow connection is open and dripping
        during = b_during(b, repeat, 1200)
    finally:
        stop.set()
        dripping.join()
        for sock in slow:
            sock.close()
    return alone, during


def hanging(a: Bench, b: Bench, repeat: int) -> tuple[float, float]:
    """Return B's latency alone, and while customer A has 100 requests for
    an email SpyCloud never answers (they end at the relay's budget)."""
    alone = b_alone(b, repeat, 1300)
    with ThreadPoolExecutor(100) as pool:
        hung = [pool.submit(a.fetch, ["fault-hang@bench.test"])
                for _ in range(100)]
        time.sleep(1)  # all of A's requests wait on SpyCloud
        during = b_during(b, repeat, 1400)
        if any(h.done() for h in hung):
            raise RuntimeError("A's requests ended before B's were timed")
        for each in hung:
            each.result()
    return alone, during


def dashboard(stack: Stack, repeat: int) -> tuple[Row, Row]:
    """Five tiles of `last_30_days` opened at once, for a customer whose
    aggregate is not cached (cold: a new key each run), then again."""
    def five(bench: Bench) -> float:
        def one(tile_id: str) -> None:
            answer = bench.session.post(
                stack.url + "/tiles/tile-data", timeout=60,
                json={"tile_id": tile_id, "period": "last_30_days"},
                headers={"Authorization": f"Bearer {bench.token}"})
            if "data" not in answer.json():
                raise RuntimeError(f"tile error: {answer.json()}")
        started = time.perf_counter()
        with ThreadPoolExecutor(len(TILE_IDS)) as pool:
            list(pool.map(one, TILE_IDS))
        return time.perf_counter() - started

    cold, warm, cold_calls, warm_calls = [], [], [], []
    for run in range(repeat):
        bench = Bench(stack, TILE_KEYS[run])
        bench.reset()
        cold.append(five(bench))
        cold_calls.append(bench.calls())
        bench.reset()
        warm.append(five(bench))
        warm_calls.append(bench.calls())
    pages = 1  # 30 days of a 2,000-record, 90-day watchlist: ~670 records
    return (Row("dashboard cold", pages + 1, statistics.median(cold),
                int(statistics.median(cold_calls)), bench.peak_mb()),
            Row("dashboard cached", 0, statistics.median(warm),
                int(statistics.median(warm_calls)), bench.peak_mb()))


def replicas(latency_ms: float, repeat: int, cluster: bool = False
             ) -> tuple[list[Row], list[str]]:
    """Cold, warm and batch against three relays sharing a Redis (shipped
    defaults but REDIS_URL), standalone or a three-primary cluster: the
    warm email and the batch go to other replicas than the one that met
    the breaches first. Standalone, also what one SpyCloud call costs
    Redis, cold and hot."""
    rows = []
    costs: list[str] = []
    kind = "Redis Cluster" if cluster else "Redis"
    with (RedisCluster() if cluster else RedisServer()) as server:
        env = {"REDIS_URL": server.url}
        first = Stack(latency_ms=latency_ms, emulator_process=True,
                      env=env).start()
        stacks = [first]
        try:
            stacks += [Stack(upstream=first, env=env).start()
                       for _ in range(2)]
            benches = [Bench(stack) for stack in stacks]
            for name, trips in (("cold", 2), ("warm", 1), ("batch", 1)):
                times, calls = [], []
                for run in range(repeat):
                    group = 700 + 10 * trips + run + (50 if name == "batch"
                                                      else 0)
                    if name == "cold":
                        bench, values = benches[run % 3], emails("cold", group)
                    else:  # the breaches met on replica 0 first
                        benches[0].observe(emails("cold", group))
                        bench = benches[1 if name == "warm" else 2]
                        values = emails(name, group)
                    elapsed, made = bench.timed(values)
                    times.append(elapsed)
                    calls.append(made)
                rows.append(Row(f"{name}, 3 replicas + {kind}", trips,
                                statistics.median(times),
                                int(statistics.median(calls)),
                                benches[0].peak_mb()))
            if isinstance(server, RedisServer):
                costs = redis_costs(server, benches[0])
        finally:
            for stack in reversed(stacks):
                stack.stop()
    return rows, costs


def redis_costs(server: RedisServer, bench: Bench) -> list[str]:
    """Redis commands per SpyCloud call of a 10-email batch: cold (20 new
    breaches), then hot (the same breaches, other emails)."""
    lines = []
    for label, group, users in (("cold", 990, range(2, 12)),
                                ("hot", 990, range(20, 30))):
        values = [f"n20.b2.s{group}{u}.u{u}@bench.test" if label == "cold"
                  else f"n20.b2.s{group}{u - 18}.u{u}@bench.test"
                  for u in users]
        made: list[int] = []
        sent, executed = server.commands(
            lambda values=values, made=made: made.append(
                bench.timed(values)[1]))
        lines.append(f"Redis commands per SpyCloud call, {label}:"
                     f" {sent / made[0]:.2f} sent, {executed / made[0]:.2f}"
                     f" executed ({made[0]} calls)")
    return lines


def memory(bench: Bench) -> tuple[float, float]:
    """Return the worker's memory before, and its peak growth while 20
    emails of 9,000 records each (9 pages, 10 breaches) are answered."""
    values = [f"n9000.b10.s{i}@bench.test" for i in range(1001, 1021)]
    for email in values:  # the emulator builds its records ahead
        bench.session.get(bench.stack.emulator.url
                          + f"breach/data/emails/{email}", timeout=60,
                          headers={"X-API-Key": bench.stack.api_key})
    before = bench.memory_mb("VmRSS")
    bench.reset_peak()
    body = bench.observe(values)
    if body["data"]["sightings"]["count"] != 20 * ORIGINAL_LIMIT:
        raise RuntimeError("the memory scenario did not answer in full")
    return before, bench.memory_mb() - before


def hundred_by_thousand(stack: Stack) -> tuple[float, float, float, int]:
    """Return the worker's memory before, its peak growth while 100 emails
    of 1,000 records each are answered with CTR_ENTITIES_LIMIT=1000, its
    growth once answered, and the sightings of the answer."""
    bench = Bench(stack)
    bench.token = stack.token(CTR_ENTITIES_LIMIT=1000)
    values = [f"n1000.b10.s{i}@bench.test" for i in range(2001, 2101)]
    for email in values:  # the emulator builds its records ahead
        bench.session.get(stack.emulator.url
                          + f"breach/data/emails/{email}", timeout=60,
                          headers={"X-API-Key": stack.api_key})
    before = bench.memory_mb("VmRSS")
    bench.reset_peak()
    count = bench.observe(values)["data"]["sightings"]["count"]
    return (before, bench.memory_mb() - before,
            bench.memory_mb("VmRSS") - before, count)


def bare(bench: Bench, concurrent: int, repeat: int) -> float:
    """Time *concurrent* direct record calls to the emulator (no relay):
    the floor as this emulator and HTTP client can actually reach it."""
    api, headers = bench.stack.emulator.url, {"X-API-Key": bench.stack.api_key}
    values = [f"n20.b10.s9.u{u}@bench.test" for u in range(concurrent)]

    def get(email: str) -> None:
        bench.session.get(api + f"breach/data/emails/{email}",
                          headers=headers, timeout=30).content

    times = []
    with ThreadPoolExecutor(concurrent) as pool:
        for _ in range(repeat + 1):
            started = time.perf_counter()
            list(pool.map(get, values))
            times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def load(bench: Bench, requests_: int, clients: int) -> dict[str, float]:
    """Send many observe requests from concurrent clients."""
    def one(n: int) -> tuple[float, bool]:
        started = time.perf_counter()
        try:
            body = bench.observe([f"n20.b10.s10.u{n + 20}@bench.test"])
            ok = not body.get("errors")
        except requests.RequestException:
            ok = False
        return time.perf_counter() - started, ok

    bench.observe(emails("cold", 0))  # breaches of set 10 known
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests_)))
    wall = time.perf_counter() - started
    latencies = sorted(t for t, _ in results)
    return {
        "requests": requests_, "clients": clients,
        "throughput": requests_ / wall,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[min(len(latencies) - 1,
                             int(len(latencies) * 0.99))],
        "errors": sum(1 for _, ok in results if not ok),
    }


def report(rows: Sequence[Row], latency: float,
           print_: Callable[[str], None] = print) -> None:
    print_(f"SpyCloud latency {latency * 1000:.0f} ms per call")
    print_("| scenario | seconds | floor | ratio | calls | peak MB "
           "| original seconds | original ratio | original calls |")
    print_("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        floor = row.round_trips * latency
        original = ("| - | - | - |" if row.original_seconds is None else
                    f"| {row.original_seconds:.2f} | "
                    f"{row.original_seconds / floor:.0f} | "
                    f"{row.original_calls} |")
        against = (f"{floor:.3f} | {row.seconds / floor:.2f}" if floor
                   else "- | -")  # no SpyCloud call: no floor
        print_(f"| {row.name} | {row.seconds:.3f} | {against} | {row.calls}"
               f" | {row.peak_mb:.0f} {original}")


def say(what: str) -> None:
    """One line on stderr as each part of the bench starts."""
    print(f"bench: {what}...", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-original", action="store_true",
                        help="skip the original-style sequential runs")
    parser.add_argument("--no-redis", action="store_true",
                        help="skip the three-replica runs (need redis-server)")
    parser.add_argument("--load-requests", type=int, default=200)
    parser.add_argument("--load-clients", type=int, default=16)
    args = parser.parse_args(argv)
    with Stack(latency_ms=args.latency_ms, emulator_process=True,
               more_keys=[KEY_B, *TILE_KEYS]) as stack:
        bench = Bench(stack)
        other = Bench(stack, KEY_B)
        for each in (bench, other):
            each.session.post(stack.url + "/health", timeout=10, headers={
                "Authorization": f"Bearer {each.token}"})
        say("memory: 20 emails of 9,000 records")
        grown = memory(bench)
        rows = []
        for name, trips in (("cold", 2), ("warm", 1), ("batch", 1),
                            ("big", 4), ("hundred", math.ceil(100 / CAP) + 1)):
            say(f"scenario {name}")
            rows.append(scenario(bench, name, trips, args.repeat,
                                 not args.no_original))
        say("CPU per batch")
        cpu = cpu_per_batch(bench)
        say("two customers, slow clients, hanging requests")
        alone, loaded = two_customers(bench, other, args.repeat)
        slow = slow_clients(other, args.repeat)
        hung = hanging(bench, other, args.repeat)
        say("memory: 100 emails of 1,000 records")
        big = hundred_by_thousand(stack)
        say("dashboard")
        rows.extend(dashboard(stack, args.repeat))
        say("load")
        figures = load(bench, args.load_requests, args.load_clients)
        single = bare(bench, 1, args.repeat)
        tenfold = bare(bench, 10, args.repeat)
        fetches = stack.jwks.fetches
        workers = len(stack.worker_pids())
    costs: list[str] = []
    if not args.no_redis:
        say("three replicas sharing Redis, then Redis Cluster")
        standalone, costs = replicas(args.latency_ms, args.repeat)
        rows.extend(standalone)
        rows.extend(replicas(args.latency_ms, args.repeat, cluster=True)[0])
    print(f"relay: shipped defaults ({workers} gunicorn worker, per-key cap"
          f" {CAP}), median of {args.repeat} runs")
    print(f"direct calls to the emulator, no relay: 1 call {single:.3f} s,"
          f" 10 concurrent calls {tenfold:.3f} s")
    report(rows, args.latency_ms / 1000)
    print(f"two customers: B's one email alone {alone:.3f} s, while A's"
          f" 100-email request runs {loaded:.3f} s, ratio {loaded / alone:.2f}")
    print(f"customer B during 200 slow clients: alone {slow[0]:.3f} s,"
          f" during {slow[1]:.3f} s, ratio {slow[1] / slow[0]:.2f}")
    print(f"customer B during A's 100 hanging requests: alone {hung[0]:.3f}"
          f" s, during {hung[1]:.3f} s, ratio {hung[1] / hung[0]:.2f}")
    print(f"memory: 20 emails x 9,000 records: worker {grown[0]:.0f} MB"
          f" before, peak growth {grown[1]:.0f} MB")
    print(f"memory: 100 emails x 1,000 records, CTR_ENTITIES_LIMIT=1000"
          f" ({big[3]:,} sightings answered): worker {big[0]:.0f} MB before,"
          f" peak growth {big[1]:.0f} MB, {big[2]:.0f} MB kept after")
    print(f"load: {figures['requests']} requests from {figures['clients']}"
          f" clients: {figures['throughput']:.0f} req/s,"
          f" p50 {figures['p50'] * 1000:.0f} ms,"
          f" p99 {figures['p99'] * 1000:.0f} ms, errors {figures['errors']}")
    per_batch, sightings, calls = cpu
    print(f"relay CPU per 10-email batch (breaches known, 40 batches):"
          f" {per_batch * 1000:.1f} ms, {per_batch * 1e6 / sightings:.0f} µs"
          f" per sighting ({sightings}), {per_batch * 1000 / calls:.2f} ms"
          f" per SpyCloud call ({calls})")
    print(f"JWKS fetches over the whole run: {fetches}")
    for line in costs:
        print(line)


if __name__ == "__main__":
    main()
