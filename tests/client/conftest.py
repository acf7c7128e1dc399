"""What the client's tests share: an app on a real uvicorn (a run that waits at a gate, one that
fails, one with typed parameters), a wrapper that cuts streams or refuses requests, and
`AsyncClient` driven through `Client`'s calls so one set of cases proves both."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from otelstream.client import AsyncClient, Client
from otelstream.fastapi import create_router
from otelstream.testing import UvicornServer
from tests.apps.ui_stream_watch import StreamWatch
from tests.conftest import Telemetry, make_telemetry

GATED = [
    ("pipeline_started", "gated"),
    ("task_started", "before"),
    ("task_completed", "before"),
    ("task_started", "after"),
    ("task_completed", "after"),
    ("pipeline_completed", "gated"),
]


@dataclass
class Served:
    url: str
    watch: StreamWatch
    telemetry: Telemetry
    gate: threading.Event
    reached: threading.Event
    refusing: Refusing
    called: list[dict[str, Any]] = field(default_factory=list)
    """The keyword arguments each run of `typed` was called with."""

    def requests(self, run_id: str) -> list[tuple[str | None, int | None]]:
        return [
            (r["last_event_id"], r["status"]) for r in self.watch.requests if r["run_id"] == run_id
        ]


class Refusing:
    """In front of the app: answers `503` with `Retry-After` to the next `count` requests whose
    path ends with `path`, as a server whose hub is down does; then lets them through. (Or
    another `status` and `body`, as a proxy in front of the server might.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0
        self.path = "/runs"
        self.retry_after = "0.01"
        self.refused = 0
        self.status = 503
        self.body = b'{"detail":"the hub cannot be reached"}'
        self.content_type = b"application/json"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.count and scope["path"].endswith(self.path):
            self.count -= 1
            self.refused += 1
            headers = [(b"retry-after", self.retry_after.encode())] if self.retry_after else []
            headers.append((b"content-type", self.content_type))
            await send({"type": "http.response.start", "status": self.status, "headers": headers})
            await send({"type": "http.response.body", "body": self.body})
            return
        await self.app(scope, receive, send)


@contextmanager
def serving(prefix: str = "", **settings: Any) -> Iterator[Served]:
    telemetry = make_telemetry(**settings)
    tracer = telemetry.tracer
    gate, reached = threading.Event(), threading.Event()
    called: list[dict[str, Any]] = []

    def gated() -> None:
        with tracer.start_as_current_span("task:before"):
            pass
        reached.set()
        assert gate.wait(10), "the test never opened the gate"
        with tracer.start_as_current_span("task:after"):
            pass

    def failing() -> None:
        with tracer.start_as_current_span("task:broken"):
            raise RuntimeError("disk full")

    def typed(seconds: float = 0.0, label: str = "") -> None:
        """Typed parameters: a wrong one is a 422 that names it."""
        called.append({"seconds": seconds, "label": label})
        with tracer.start_as_current_span("task:work"):
            pass

    app = FastAPI()
    app.include_router(
        create_router(
            hub=telemetry.hub,
            pipelines={"gated": gated, "failing": failing, "typed": typed},
            tracer_provider=telemetry.provider,
            prefix=prefix,
        )
    )
    watch = StreamWatch(app)
    refusing = Refusing(watch)
    try:
        with UvicornServer(refusing) as server:
            try:
                yield Served(server.url + prefix, watch, telemetry, gate, reached, refusing, called)
            finally:
                gate.set()  # a run still waiting must end before the server stops
    finally:
        telemetry.provider.shutdown()


@pytest.fixture
def served() -> Iterator[Served]:
    with serving() as found:
        yield found


class AsyncAsSync:
    """`AsyncClient` behind `Client`'s interface, on an event loop of its own: so one set of
    cases proves both clients, method by method (a coroutine is run to its end, an async
    iterator is iterated)."""

    def __init__(self, base_url: str, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = AsyncClient(base_url, **options)

    def __enter__(self) -> AsyncAsSync:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if inspect.isasyncgen(result):
                return self._each(result)
            return self.loop.run_until_complete(result)

        return call

    def _each(self, events: AsyncIterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        while True:
            try:
                yield self.loop.run_until_complete(anext(events))
            except StopAsyncIteration:
                return


ClientFactory = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def client_class(request: pytest.FixtureRequest) -> ClientFactory:
    """`Client`, or `AsyncClient` driven through the same calls."""
    return Client if request.param == "sync" else AsyncAsSync
