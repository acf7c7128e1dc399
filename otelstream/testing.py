"""Helpers for testing apps that use otelstream: a real uvicorn on a free port, an SSE reader,
waiting for a run to end, a hub's events read as `Event`s, real Redis servers.

Needs the `testing` extra (uvicorn, httpx, httpx-sse).
"""

from __future__ import annotations

import random
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import httpx
import uvicorn
from httpx_sse import ServerSentEvent, connect_sse
from starlette.types import ASGIApp

from otelstream.events import Event
from otelstream.events._wire import parse
from otelstream.hubs import Subscription
from otelstream.hubs._entries import decode_chunk
from otelstream.hubs._fanout import FeedSubscription


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class UvicornServer:
    """Runs `app` in a real uvicorn, in a thread, on 127.0.0.1; `url` is where it listens.

    On exit, requests still open after `timeout_graceful_shutdown` (2 s unless given) are
    cancelled: a page left open keeps its runs list's stream open for ever, and uvicorn would
    wait for it."""

    def __init__(self, app: ASGIApp, **config: Any) -> None:
        config.setdefault("host", "127.0.0.1")
        config.setdefault("port", free_port(config["host"]))
        config.setdefault("log_level", "warning")
        config.setdefault("lifespan", "on")
        config.setdefault("timeout_graceful_shutdown", 2)
        self.config = uvicorn.Config(app, **config)
        self.server = uvicorn.Server(self.config)
        self.url = f"http://{self.config.host}:{self.config.port}"
        self._thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> UvicornServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)


@contextmanager
def serve(app: ASGIApp, **config: Any) -> Iterator[UvicornServer]:
    with UvicornServer(app, **config) as server:
        yield server


def iter_sse(
    client: httpx.Client, method: str, url: str, **kwargs: Any
) -> Iterator[ServerSentEvent]:
    """Every SSE message of one response, parsed as the spec says; raises on a non-200 answer."""
    with connect_sse(client, method, url, **kwargs) as source:
        source.response.raise_for_status()
        for message in source.iter_sse():
            # The spec dispatches nothing for a block without data (a keep-alive comment);
            # httpx-sse yields one when an id was seen before.
            if message.data:
                yield message


def read_events(client: httpx.Client, method: str, url: str, **kwargs: Any) -> list[dict[str, Any]]:
    """The stream's events as dicts, with the SSE id checked against each event's `seq`."""
    events = []
    for message in iter_sse(client, method, url, **kwargs):
        event = parse(message.data)
        if message.id and str(event.get("seq")) != message.id:
            raise AssertionError(f"SSE id {message.id!r} differs from seq in {event}")
        events.append(event)
    return events


class RunReader(Protocol):
    """What `wait_for_run` can ask: `otelstream.client.Client` is one."""

    def get_run(self, run_id: str) -> dict[str, Any]: ...


def wait_for_run(
    client: httpx.Client | RunReader, run_id: str, *, timeout: float = 10.0
) -> dict[str, Any]:
    """`GET /runs/{run_id}` until the run is no longer running; the run as that answer has it.

    `client` is an `httpx.Client` whose `base_url` is where the router is served (its prefix
    included), or an `otelstream.client.Client`. Raises `TimeoutError` after `timeout` s.
    """
    deadline = time.monotonic() + timeout
    while True:
        if isinstance(client, httpx.Client):
            response = client.get(f"/runs/{run_id}")
            response.raise_for_status()
            run: dict[str, Any] = response.json()
        else:
            run = client.get_run(run_id)
        if run["status"] != "running":
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} is still running after {timeout} s")
        time.sleep(0.01)


class RedisServer:
    """A real `redis-server` on a free port of 127.0.0.1, that nothing persists for.

    `redis-server --port N --save '' --appendonly no`: a restart starts empty,
    as after a crash. For tests and benchmarks of the Redis hub.
    """

    def __init__(self, executable: str = "redis-server", *, port: int | None = None) -> None:
        self.executable = executable
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(
        self, timeout: float = 10.0, *, cwd: str | None = None, options: list[str] | None = None
    ) -> None:
        command = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--loglevel", "warning"]
        command += options or []
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        """SIGTERM (there is nothing to save), SIGKILL if it takes over 10 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL, as a crash: connections drop and the data is gone."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(10)

    def command(self, *args: str | int) -> object:
        """One command over a short-lived connection (needs redis-py: the `redis` extra)."""
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


def _cluster_port() -> int:
    """A free port whose cluster bus port (10000 above it) is free too."""
    while True:
        port = random.randrange(20_000, 50_000)
        try:
            for candidate in (port, port + 10_000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


class RedisClusterServers:
    """A real three-master Redis Cluster on free ports of 127.0.0.1, in a temporary directory.

    Each node is `redis-server --cluster-enabled yes` with nothing persisted; `redis-cli
    --cluster create` assigns the slots. `url` (`redis+cluster://127.0.0.1:PORT`) names one
    seed node, as `OTELSTREAM_HUB` does. For tests and benchmarks of the Redis hub.
    """

    def __init__(self, masters: int = 3, executable: str = "redis-server") -> None:
        self.nodes = [RedisServer(executable, port=_cluster_port()) for _ in range(masters)]
        self.url = f"redis+cluster://127.0.0.1:{self.nodes[0].port}"
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="otelstream-cluster-")
        for node in self.nodes:
            node.start(
                cwd=self._directory.name,
                options=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    f"nodes-{node.port}.conf",
                    "--cluster-node-timeout",
                    "2000",
                ],
            )
        command = ["redis-cli", "--cluster", "create"]
        command += [f"127.0.0.1:{node.port}" for node in self.nodes]
        command += ["--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)
        deadline = time.monotonic() + timeout
        while not all(
            "cluster_state:ok" in str(node.command("CLUSTER", "INFO")) for node in self.nodes
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis cluster did not reach cluster_state:ok")
            time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    def __enter__(self) -> RedisClusterServers:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def next_batch(subscription: Subscription, timeout: float) -> list[Event] | None:
    """Every event after the subscription's `last_seq` that is there, as `Event`s, waiting up to
    `timeout` seconds for one: `[]` when the time ran out, None when the run has ended and
    everything was handed out. A stream sends frames (`next_frames`); this reads them back
    as events, for tests. A reader of either hub that fell out of the replay buffer gets
    `otelstream.hubs.SubscriberLagged`; of any other hub, the `stream_overflow` notice."""
    if isinstance(subscription, FeedSubscription):  # both hubs: no frame decoded twice
        return await subscription.next_events(timeout)
    chunk = await subscription.next_frames(timeout)
    return None if chunk is None else decode_chunk(chunk)


__all__ = [
    "RedisClusterServers",
    "RedisServer",
    "RunReader",
    "UvicornServer",
    "free_port",
    "iter_sse",
    "next_batch",
    "read_events",
    "serve",
    "wait_for_run",
]
