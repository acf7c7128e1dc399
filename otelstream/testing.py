"""Helpers for testing apps that use otelstream: a real uvicorn on a free port, an SSE reader.

Needs the `testing` extra (uvicorn, httpx, httpx-sse).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from httpx_sse import ServerSentEvent, connect_sse
from starlette.types import ASGIApp


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class UvicornServer:
    """Runs `app` in a real uvicorn, in a thread, on 127.0.0.1; `url` is where it listens."""

    def __init__(self, app: ASGIApp, **config: Any) -> None:
        config.setdefault("host", "127.0.0.1")
        config.setdefault("port", free_port(config["host"]))
        config.setdefault("log_level", "warning")
        config.setdefault("lifespan", "on")
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
        event = json.loads(message.data)
        if message.id and str(event.get("seq")) != message.id:
            raise AssertionError(f"SSE id {message.id!r} differs from seq in {event}")
        events.append(event)
    return events
