"""The whole relay on one machine: emulator + JWKS server + gunicorn.

Used by `make demo`, the end-to-end tests and the benchmarks, so they all
run the real relay the same way, on loopback only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import requests

from .emulator import DEFAULT_KEY, Emulator
from .tokenkit import JwksServer, TokenKit

CODE = Path(__file__).resolve().parent.parent


def busy(port: int, host: str = "127.0.0.1") -> bool:
    """Say whether another program listens on *port* already."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port() -> int:
    """Return a TCP port on loopback nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmulatorProcess:
    """The emulator in a process of its own, for measurements that must not
    share a GIL with the load generator; counts are read over HTTP."""

    def __init__(self, host: str, port: int, api_key: str,
                 latency_ms: float, fault_rate: float, seed: int = 0,
                 more_keys: Sequence[str] = ()) -> None:
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}/enterprise-v2/"
        self._argv = [
            sys.executable, "-m", "devtools.emulator", "--host", host,
            "--port", str(self.port), "--api-key", api_key,
            "--latency-ms", str(latency_ms), "--fault-rate", str(fault_rate),
            "--seed", str(seed),
        ]
        for key in more_keys:
            self._argv += ["--also-key", key]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> EmulatorProcess:
        self._process = subprocess.Popen(  # noqa: S603 (fixed argv)
            self._argv, cwd=CODE, stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                requests.get(self.url.replace("/enterprise-v2/",
                                              "/_emulator/stats"), timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the emulator did not start")

    def stop(self) -> None:
        if self._process:
            self._process.terminate()
            self._process.wait(10)


class Stack:
    """Start the emulator and JWKS server in-process, the relay as gunicorn."""

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        latency_ms: float = 0,
        fault_rate: float = 0.0,
        api_key: str = DEFAULT_KEY,
        env: dict[str, str] | None = None,
        log: IO[str] | None = None,
        kit: TokenKit | None = None,
        emulator_port: int = 0,
        jwks_port: int = 0,
        emulator_process: bool = False,
        more_keys: Sequence[str] = (),
        upstream: Stack | None = None,
    ) -> None:
        self.api_key = api_key
        # Another stack's emulator and JWKS server, for several relays
        # (replicas) in front of one SpyCloud.
        self.upstream = upstream
        if upstream is not None:
            self.kit, self.emulator, self.jwks = (
                upstream.kit, upstream.emulator, upstream.jwks)
        else:
            self.kit = kit or TokenKit()
            kind = EmulatorProcess if emulator_process else Emulator
            self.emulator = kind(host, emulator_port, api_key, latency_ms,
                                 fault_rate, 0, more_keys)
            self.jwks = JwksServer([self.kit], host, jwks_port)
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self._env = env or {}
        self._log = log
        self.process: subprocess.Popen[str] | None = None

    def relay_env(self) -> dict[str, str]:
        """Return the environment that wires the relay to the local parts."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SPYCLOUD_", "JWKS_", "JWT_"))}
        env.update({
            "SPYCLOUD_API_URL": self.emulator.url,
            "ALLOWED_JWKS_HOSTS": self.jwks.host,
            "JWKS_URL_TEMPLATE": "http://{jwks_host}/.well-known/jwks",
            "BIND": f"{self.url.removeprefix('http://')}",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self._env)
        return env

    def start(self, timeout: float = 20) -> Stack:
        """Start all three and wait until the relay answers; whatever goes
        wrong on the way, nothing it started is left running."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> Stack:
        if self.upstream is None:
            self.emulator.start()
            self.jwks.start()
        self.process = subprocess.Popen(  # noqa: S603 (fixed argv)
            [sys.executable, "serve.py"],
            cwd=CODE,
            env=self.relay_env(),
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the relay exited at start-up")
            try:
                requests.post(self.url + "/version", timeout=1)
            except requests.RequestException:  # not up yet, or busy
                time.sleep(0.1)
                continue
            return self._check_own()
        raise RuntimeError("the relay did not answer in time")

    def _check_own(self) -> Stack:
        """Make sure what answers is this relay: it accepts a token only
        this stack's JWKS server can vouch for."""
        answer = requests.post(self.url + "/health", timeout=30, headers={
            "Authorization": f"Bearer {self.token()}"})
        if self.process.poll() is None and answer.headers.get(
                "Content-Type") == "application/json" and answer.json() == {
                    "data": {"status": "ok"}}:
            return self
        raise RuntimeError(f"{self.url} answers, but not as this relay:"
                           " another program holds the port")

    def stop(self) -> None:
        """Stop the relay (gracefully), then the JWKS server and emulator."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.upstream is None:
            self.jwks.stop()
            self.emulator.stop()

    def token(self, **claims: Any) -> str:
        """Mint a configuration token for this relay (claims override)."""
        base = {"key": self.api_key, "jwks_host": self.jwks.host,
                "aud": self.url}
        base.update(claims)
        return self.kit.mint({k: v for k, v in base.items() if v is not None})

    def worker_pids(self) -> list[int]:
        """Return the pids of gunicorn's worker processes."""
        assert self.process is not None
        parent = str(self.process.pid)
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == parent:
                pids.append(int(stat.parent.name))
        return pids

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
