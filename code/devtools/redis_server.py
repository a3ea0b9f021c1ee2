"""Throwaway Redis servers on loopback, for tests and benchmarks: one
server (plain, or TLS with a private CA and an ACL user), a three-primary
cluster, and a primary with a replica watched by a sentinel.

Debian's package `redis-server` provides the binaries (`.ci/run`
installs it where it is missing); the sentinel is the same binary.
Nothing is persisted.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from .stack import free_port


def _binary(name: str = "redis-server") -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed"
                           " (Debian: apt-get install redis-server)")
    return found


class RedisServer:
    """Start, stop and restart one redis-server on a free loopback port.

    With *tls* (a CA, and a certificate and key it signed for 127.0.0.1)
    it speaks TLS only; with *user* (name, password) that ACL user is the
    only one, the default user off."""

    def __init__(self, port: int | None = None, *,
                 tls: tuple[str, str, str] | None = None,
                 user: tuple[str, str] | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        scheme = "rediss" if tls else "redis"
        credentials = f"{user[0]}:{user[1]}@" if user else ""
        self.url = f"{scheme}://{credentials}127.0.0.1:{self.port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="relay-redis-")
        self.dir = Path(self._dir.name)
        self._tls = tls
        self._user = user
        self._extra = extra
        self._process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        argv = [_binary(), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.dir)]
        if self._tls:
            ca, cert, key = self._tls
            argv += ["--port", "0", "--tls-port", str(self.port),
                     "--tls-ca-cert-file", ca, "--tls-cert-file", cert,
                     "--tls-key-file", key, "--tls-auth-clients", "no"]
        else:
            argv += ["--port", str(self.port)]
        if self._user:
            name, password = self._user
            acl = self.dir / "users.acl"
            acl.write_text(f"user default off\nuser {name} on >{password}"
                           " ~* &* +@all\n")
            argv += ["--aclfile", str(acl)]
        return argv + list(self._extra)

    def client(self) -> redis.Redis:
        """A client of this server as an administrator (the ACL user)."""
        options: dict[str, object] = {"socket_timeout": 2, "protocol": 2}
        if self._tls:
            options.update(ssl=True, ssl_ca_certs=self._tls[0])
        if self._user:
            options.update(username=self._user[0], password=self._user[1])
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def commands(self, run: Callable[[], object]) -> tuple[int, int]:
        """Run *run*; return how many commands this server was sent
        (MONITOR: a script's own commands not counted) and how many it
        executed (INFO commandstats: a script's own counted)."""
        admin = self.client()
        admin.ping()  # its connection's handshake is not counted

        def executed() -> int:
            stats = admin.info("commandstats")
            return sum(v["calls"] for k, v in stats.items()
                       if k not in ("cmdstat_info", "cmdstat_monitor",
                                    "cmdstat_echo"))

        sent: list[str] = []
        listening = threading.Event()

        def monitor() -> None:
            with self.client().monitor() as watching:
                listening.set()
                for event in watching.listen():
                    if "STOP-MONITOR" in event["command"]:
                        return
                    if event.get("client_type") != "lua" and not event[
                            "command"].startswith(("INFO", "ECHO")):
                        sent.append(event["command"])

        watcher = threading.Thread(target=monitor, daemon=True)
        watcher.start()
        listening.wait(5)
        time.sleep(0.1)  # MONITOR is in place
        before = executed()
        run()
        after = executed()
        admin.echo("STOP-MONITOR")
        watcher.join(5)
        return len(sent), after - before

    def start(self) -> RedisServer:
        self._process = subprocess.Popen(  # noqa: S603 (fixed argv)
            self.argv(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        client = self.client()
        for _ in range(100):
            try:
                client.ping()
                return self
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class RedisCluster:
    """Three primaries in one cluster (ports below 55535: each node's bus
    listens 10000 higher); `url` names them as seeds."""

    def __init__(self) -> None:
        self.nodes = [RedisServer(_cluster_port(), extra=(
            "--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
            "--cluster-config-file", "nodes.conf")) for _ in range(3)]
        self.url = "redis+cluster://" + ",".join(
            f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        subprocess.run(  # noqa: S603 (fixed argv)
            [_binary("redis-cli"), "--cluster", "create",
             *[f"127.0.0.1:{node.port}" for node in self.nodes],
             "--cluster-yes"], check=True, capture_output=True, timeout=60)
        client = self.nodes[0].client()
        for _ in range(200):
            if client.cluster("info").get("cluster_state") == "ok":
                return self
            time.sleep(0.05)
        raise RuntimeError("the cluster did not form")

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cluster_port() -> int:
    for _ in range(100):
        port = free_port()
        if port <= 55535:
            return port
    raise RuntimeError("no free port below 55535")


class RedisSentinel:
    """A primary, a replica of it, and *count* sentinels watching them
    (down after 1 s, *quorum* of them to agree); `url` asks the sentinels
    for the primary of `MASTER`."""

    MASTER = "relay"

    def __init__(self, count: int = 1, quorum: int = 1) -> None:
        self.primary = RedisServer()
        self.replica = RedisServer(extra=("--replicaof", "127.0.0.1",
                                          str(self.primary.port)))
        self.ports = [free_port() for _ in range(count)]
        self.quorum = quorum
        self._dir = tempfile.TemporaryDirectory(prefix="relay-sentinel-")
        self.url = "redis+sentinel://" + ",".join(
            f"127.0.0.1:{port}" for port in self.ports) + f"/{self.MASTER}/0"
        self._processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> RedisSentinel:
        self.primary.start()
        self.replica.start()
        for port in self.ports:
            config = Path(self._dir.name) / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {self.MASTER} 127.0.0.1"
                f" {self.primary.port} {self.quorum}\n"
                f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
                f"sentinel failover-timeout {self.MASTER} 5000\n")
            self._processes.append(subprocess.Popen(  # noqa: S603 (fixed argv)
                [_binary(), str(config), "--sentinel"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(200):
            try:
                if all(self._sentinel(port).sentinel_get_master_addr_by_name(
                        self.MASTER) for port in self.ports) and all(
                        self.peers(port) == len(self.ports) - 1
                        for port in self.ports):
                    return self
            except (redis.ConnectionError, redis.ResponseError):
                pass
            time.sleep(0.05)
        raise RuntimeError("the sentinels did not start")

    def peers(self, port: int) -> int:
        """How many other sentinels the sentinel on *port* knows."""
        return len(self._sentinel(port).sentinel_sentinels(self.MASTER))

    def primary_port(self) -> int:
        """The port of the primary the first sentinel names now."""
        _, port = self._sentinel(self.ports[0]) \
            .sentinel_get_master_addr_by_name(self.MASTER)
        return int(port)

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1,
                           protocol=2)

    def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        self.replica.close()
        self.primary.close()
        self._dir.cleanup()

    def __enter__(self) -> RedisSentinel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
