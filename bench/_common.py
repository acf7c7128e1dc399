"""Shared plumbing: server subprocesses, /proc readings, and the result type every part returns."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from otelstream.testing import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
T = TypeVar("T")


class BenchError(RuntimeError):
    """Something is broken (an event lost, a server that did not start): the run must fail."""


@dataclass
class Goal:
    what: str
    target: str
    measured: str
    met: bool


@dataclass
class Section:
    """One part's markdown: a title, a table, notes; goals are gathered into the summary."""

    title: str
    table: list[str]
    notes: list[str] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    """Sentences for the README's performance block, figures from this same run."""

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", *self.table]
        if self.notes:
            lines += ["", *self.notes]
        return "\n".join(lines)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A markdown table; numbers are formatted by the caller, so the columns say what they mean."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was measured, never an interpolation."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def alternating(items: Sequence[T], reps: int) -> Iterator[tuple[int, T]]:
    """(rep, item) for `reps` repetitions, every other one in reverse order, so that no item
    always runs first or last (the machine warms up, other processes come and go)."""
    for rep in range(reps):
        for item in items if rep % 2 == 0 else list(reversed(items)):
            yield rep, item


def spread(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """`median (min to max)`, or the one value of a single run."""
    if len(values) == 1:
        return fmt.format(values[0])
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{fmt.format(mid)} ({fmt.format(low)}\N{EN DASH}{fmt.format(high)})"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, read from /proc (10 ms resolution)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def python_path() -> str:
    """The PYTHONPATH of a subprocess: the caller's first (a scratch copy of otelstream put
    there is what gets measured), then this checkout; with `python -P`, not the cwd."""
    inherited = os.environ.get("PYTHONPATH")
    return f"{inherited}{os.pathsep}{ROOT}" if inherited else str(ROOT)


class Server:
    """`uvicorn APP` in a process of its own on 127.0.0.1: one worker, uvloop, httptools.

    A subprocess, so that its CPU time and memory can be read alone and the
    client reading its sockets is not what is measured.
    """

    def __init__(self, app: str, env: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.env = dict(env or {})  # on top of this process's environment (e.g. OTELSTREAM_HUB)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self) -> None:
        command = [sys.executable, "-P", "-m", "uvicorn", self.app, "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--loop", "uvloop", "--http", "httptools"]
        command += ["--log-level", "warning", "--no-access-log", "--backlog", "4096"]
        # uvicorn puts --app-dir (default: the cwd) first on sys.path: make it the path's head
        command += ["--app-dir", python_path().split(os.pathsep)[0]]
        # the memory hub unless told otherwise: a stray OTELSTREAM_HUB must not change parts 2-3
        env = {**os.environ, "OTELSTREAM_HUB": "memory", **self.env, "PYTHONPATH": python_path()}
        self.process = subprocess.Popen(command, cwd=ROOT, env=env)

    def wait_ready(self, timeout: float = 60.0) -> None:  # a loaded CI machine starts slowly
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.app} exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/bench/stats", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise BenchError(f"{self.app} did not start within {timeout} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def stats(self) -> dict[str, int]:
        answer = httpx.get(f"{self.url}/bench/stats", timeout=10)
        answer.raise_for_status()
        result: dict[str, int] = answer.json()
        return result

    def post(self, path: str, body: object | None = None) -> httpx.Response:
        answer = httpx.post(f"{self.url}{path}", json=body, timeout=30)
        answer.raise_for_status()
        return answer


@contextmanager
def servers(*apps: str | Server) -> Iterator[list[Server]]:
    """Started `Server`s (an app's `MODULE:APP`, or a `Server` not spawned yet), always stopped
    on the way out (also on errors and Ctrl-C).

    Started side by side, as their start-up (imports) is most of a smoke run;
    they are measured one at a time, and an idle server costs the others nothing.
    """
    running = [app if isinstance(app, Server) else Server(app) for app in apps]
    try:
        for each in running:
            each.spawn()
        for each in running:
            each.wait_ready()
        yield running
    finally:
        for each in running:
            each.stop()


def connect(port: int, request: bytes, timeout: float = 10.0) -> socket.socket:
    """A raw client socket with the request already sent: nothing between the bytes and us."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(request)
    return sock


def find_redis() -> tuple[str | None, str]:
    """`redis-server`'s path, or None and why: it is not installed, or redis-py (otelstream's
    `redis` extra, which the Redis hub needs) does not import."""
    executable = shutil.which("redis-server")
    if executable is None:
        return None, "redis-server not found"
    try:
        import redis  # noqa: F401
    except ImportError:
        return None, "redis-py (the `redis` extra) not installed"
    return executable, ""


@contextmanager
def redis_server(executable: str) -> Iterator[RedisServer]:
    """A started `RedisServer`, always stopped on the way out."""
    server = RedisServer(executable)
    try:
        try:
            server.start()
        except RuntimeError as exc:
            raise BenchError(str(exc)) from exc
        yield server
    finally:
        server.stop()
