"""A real redis-server for the tests, on a free port of 127.0.0.1, that a test may kill and restart.

Missing redis-server (or redis-py) fails the tests when `CI` is set and skips them otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from otelstream.testing import free_port


def require_redis() -> str:
    """The redis-server executable; fails (under CI) or skips when it or redis-py is missing."""
    problem = None
    executable = shutil.which("redis-server")
    if executable is None:
        problem = "redis-server is not installed (apt-get install -y redis-server)"
    else:
        try:
            import redis  # noqa: F401
        except ImportError:
            problem = "redis-py is not installed (the `redis` extra of otelstream)"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the Redis tests need a Redis: {problem}", pytrace=False)
        pytest.skip(problem)
    assert executable is not None
    return executable


class RedisServer:
    """`redis-server --port N --save '' --appendonly no`: nothing survives a restart."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL, as a crash: connections drop, unsaved data is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def command(self, *args: str | int) -> object:
        """One command over a short-lived sync connection (for checks, not for the hub)."""
        import redis

        with redis.Redis.from_url(self.url, decode_responses=True) as client:
            return client.execute_command(*args)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def redis_server() -> Iterator[RedisServer]:
    """For a fixture: a started server, killed at the end."""
    server = RedisServer(require_redis())
    server.start()
    try:
        yield server
    finally:
        server.kill()
