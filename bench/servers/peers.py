"""The designs otelstream is compared with, fed the same spans from the same pipelines.

Every peer runs `bench.servers._pipeline` in a pool of `OTELSTREAM_MAX_WORKERS`
threads (8 by default, as otelstream's), under a global `TracerProvider` whose
one processor, `FramingProcessor`, is what a careful hand-written server would
do: it makes each event's JSON and SSE frame once, on the span thread, and hands
it to the event loop with `call_soon_threadsafe`, where it is appended to its
run's list and the run's readers are woken. Readers keep a cursor into the list,
so late subscribers miss nothing, as with otelstream's replay. They differ only
in how they write:

- `joined`: a Starlette `StreamingResponse` writing everything pending as one chunk;
- `per_event`: the same, one chunk per event;
- `sse_starlette_app`: sse-starlette's `EventSourceResponse`, one `ServerSentEvent` per event;
- `fastapi_sse`: FastAPI's `fastapi.sse`, `ServerSentEvent(raw_data=…)` per event (a FastAPI
  app, so FastAPI's own telemetry is on, as it comes).
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fastapi.sse
import sse_starlette
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bench.servers._control import control_routes
from bench.servers._pipeline import END_NS, PIPELINES
from otelstream.events import (
    PIPELINE_COMPLETED,
    PIPELINE_STARTED,
    TASK_COMPLETED,
    TASK_STARTED,
    Event,
    encode_sse,
)

Item = tuple[int, str, bytes]
"""(seq, the event's JSON, its SSE frame): made once, shared by every subscriber."""


class Feed:
    """One run's events in order, and the futures of the readers waiting for the next one."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.done = False
        self.waiters: list[asyncio.Future[None]] = []

    def append(self, item: Item, last: bool) -> None:
        self.items.append(item)
        self.done = self.done or last
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def batches(self) -> AsyncIterator[list[Item]]:
        """Everything after the reader's cursor, as it comes, until the run's last event."""
        cursor = 0
        loop = asyncio.get_running_loop()
        while True:
            if cursor < len(self.items):
                batch = self.items[cursor:]
                cursor += len(batch)
                yield batch
            elif self.done:
                return
            else:
                waiter = loop.create_future()
                self.waiters.append(waiter)
                await waiter


class Runs:
    """The runs of one peer server: started in its pool, fed by its processor, read by streams."""

    def __init__(self) -> None:
        self.feeds: dict[int, Feed] = {}
        self.by_trace: dict[int, tuple[int, itertools.count[int]]] = {}
        self.readers = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        workers = int(os.environ.get("OTELSTREAM_MAX_WORKERS", "8"))
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="pipeline")
        self._next = itertools.count()
        self.starting: tuple[int, itertools.count[int]] | None = None

    def start(self, name: str, parameters: dict[str, Any]) -> int:
        """The run's root span starts now; its pipeline runs in the pool (queued if all busy)."""
        self.loop = asyncio.get_running_loop()
        run = next(self._next)
        self.feeds[run] = Feed()
        tracer = trace.get_tracer("bench")
        self.starting = (run, itertools.count(1))  # the processor files the root's trace under it
        span = tracer.start_span(f"pipeline:{name}", context=Context())  # a trace of its own
        self.starting = None

        def execute() -> None:
            with trace.use_span(span, end_on_exit=True):
                PIPELINES[name](**parameters)

        self.pool.submit(execute)
        return run

    def publish(self, run: int, item: Item, last: bool) -> None:
        """On the loop: one `call_soon_threadsafe` per event from the span thread."""
        self.feeds[run].append(item, last)

    async def stream(self, run: int) -> AsyncIterator[list[Item]]:
        self.readers += 1
        try:
            async for batch in self.feeds[run].batches():
                yield batch
        finally:
            self.readers -= 1


class FramingProcessor(SpanProcessor):
    """Frames each event once on the span thread and hands it to the loop."""

    def __init__(self, runs: Runs) -> None:
        self.runs = runs

    def _emit(self, span: ReadableSpan, started: bool) -> None:
        context, runs = span.context, self.runs
        root = span.parent is None
        if started and root and runs.starting is not None:
            runs.by_trace[context.trace_id] = runs.starting
        found = runs.by_trace.get(context.trace_id)
        if found is None or runs.loop is None or not span.name.startswith(("task:", "pipeline:")):
            return
        run, counter = found
        name = span.name.partition(":")[2]
        parent = None if span.parent is None else span.parent.span_id
        if started:
            kind = PIPELINE_STARTED if root else TASK_STARTED
            event = Event(kind, name, f"{context.trace_id:032x}", context.span_id, parent, 0)
            event.time_ns = span.start_time or 0
        else:
            kind = PIPELINE_COMPLETED if root else TASK_COMPLETED
            end = span.end_time or 0
            event = Event(kind, name, f"{context.trace_id:032x}", context.span_id, parent, end)
            event.duration_ns = end - (span.start_time or end)
            event.status = "success" if root else None
            stamp = (span.attributes or {}).get(END_NS)
            event.attributes = None if stamp is None else {END_NS: stamp}
        seq = event.seq = next(counter)
        data = event.to_json()
        item = (seq, data, encode_sse(data, event_id=seq))
        runs.loop.call_soon_threadsafe(runs.publish, run, item, kind == PIPELINE_COMPLETED)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._emit(span, True)

    def on_end(self, span: ReadableSpan) -> None:
        self._emit(span, False)


def _runs() -> Runs:
    runs = Runs()
    provider = TracerProvider()
    provider.add_span_processor(FramingProcessor(runs))
    trace.set_tracer_provider(provider)
    return runs


RUNS = _runs()


async def _start(request: Request) -> Response:
    body = await request.json()
    run = RUNS.start(body["pipeline_name"], body.get("parameters", {}))
    return JSONResponse({"run_id": str(run), "events_url": f"/runs/{run}/events"}, 202)


def _starlette_app(respond: Callable[[AsyncIterator[list[Item]]], Response]) -> Starlette:
    async def events(request: Request) -> Response:
        return respond(RUNS.stream(int(request.path_params["run"])))

    routes = [Route("/runs", _start, methods=["POST"]), Route("/runs/{run:int}/events", events)]
    return Starlette(routes=routes + control_routes(lambda: RUNS.readers))


def _joined(batches: AsyncIterator[list[Item]]) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        async for batch in batches:
            yield b"".join([frame for _, _, frame in batch])

    return StreamingResponse(chunks(), media_type="text/event-stream")


def _per_event(batches: AsyncIterator[list[Item]]) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        async for batch in batches:
            for _, _, frame in batch:
                yield frame

    return StreamingResponse(chunks(), media_type="text/event-stream")


def _sse_starlette(batches: AsyncIterator[list[Item]]) -> Response:
    async def events() -> AsyncIterator[Any]:
        async for batch in batches:
            for seq, data, _ in batch:
                yield sse_starlette.ServerSentEvent(data=data, id=str(seq))

    return sse_starlette.EventSourceResponse(events())


joined = _starlette_app(_joined)
per_event = _starlette_app(_per_event)
sse_starlette_app = _starlette_app(_sse_starlette)

fastapi_sse = FastAPI()
fastapi_sse.router.routes.append(Route("/runs", _start, methods=["POST"]))


@fastapi_sse.get("/runs/{run}/events", response_class=fastapi.sse.EventSourceResponse)
async def fastapi_events(run: int) -> AsyncIterator[fastapi.sse.ServerSentEvent]:
    async for batch in RUNS.stream(run):
        for seq, data, _ in batch:
            yield fastapi.sse.ServerSentEvent(raw_data=data, id=str(seq))


fastapi_sse.router.routes.extend(control_routes(lambda: RUNS.readers))
