"""The SSE servers people use, each fed by the same simple in-memory broadcast.

`fastapi_sse` (FastAPI's `fastapi.sse`), `sse_starlette` (sse-starlette's
`EventSourceResponse`) and `starlette_plain` (a Starlette `StreamingResponse`
writing one pre-framed chunk per event) serve `GET /runs/{run}/events` from an
`asyncio.Queue` per subscriber. `POST /bench/go?runs=R&events=E` starts a task
that publishes E events to each of the runs 0..R-1, round robin, JSON made once
per event with otelstream's own schema, so that the bytes are the same size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import fastapi.sse
import sse_starlette
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bench.servers._control import FANOUT_TASK, control_routes
from otelstream.events import TASK_COMPLETED, TASK_STARTED, Event, encode_sse

Item = tuple[int, str, bytes]
"""(seq, the event's JSON, the event framed for SSE): made once, shared by every subscriber."""


class Broadcast:
    """Run -> one `asyncio.Queue` per subscriber; `None` ends every stream of the run."""

    def __init__(self) -> None:
        self.runs: dict[int, list[asyncio.Queue[Item | None]]] = {}
        self._producer: asyncio.Task[None] | None = None

    def subscribe(self, run: int) -> asyncio.Queue[Item | None]:
        queue: asyncio.Queue[Item | None] = asyncio.Queue()
        self.runs.setdefault(run, []).append(queue)
        return queue

    def unsubscribe(self, run: int, queue: asyncio.Queue[Item | None]) -> None:
        queues = self.runs.get(run, [])
        if queue in queues:
            queues.remove(queue)

    def count(self) -> int:
        return sum(len(queues) for queues in self.runs.values())

    def publish(self, run: int, item: Item | None) -> None:
        for queue in self.runs.get(run, ()):
            queue.put_nowait(item)

    async def go(self, request: Request) -> None:
        runs = int(request.query_params.get("runs", "100"))
        events = int(request.query_params.get("events", "1000"))
        self._producer = asyncio.create_task(self._produce(runs, events))

    async def _produce(self, runs: int, events: int) -> None:
        name = FANOUT_TASK.removeprefix("task:")
        for seq in range(1, events + 1):
            for run in range(runs):
                kind = TASK_STARTED if seq % 2 else TASK_COMPLETED
                event = Event(kind, name, f"{run:032x}", seq, run + 1, 1_764_086_197_123_456_789)
                event.seq = seq
                if kind == TASK_COMPLETED:
                    event.duration_ns = 12_345
                data = event.to_json()
                self.publish(run, (seq, data, encode_sse(data, event_id=seq)))
            await asyncio.sleep(0)
        for run in range(runs):
            self.publish(run, None)


async def _items(broadcast: Broadcast, run: int) -> AsyncIterator[Item]:
    queue = broadcast.subscribe(run)
    try:
        while (item := await queue.get()) is not None:
            yield item
    finally:
        broadcast.unsubscribe(run, queue)


def _starlette_app(
    broadcast: Broadcast, respond: Callable[[AsyncIterator[Item]], Response]
) -> Starlette:
    async def events(request: Request) -> Response:
        return respond(_items(broadcast, int(request.path_params["run"])))

    routes = [Route("/runs/{run:int}/events", events)]
    return Starlette(routes=routes + control_routes(broadcast.count, broadcast.go))


# -- FastAPI's fastapi.sse --------------------------------------------------------------------

_fastapi_broadcast = Broadcast()
fastapi_sse = FastAPI()


@fastapi_sse.get("/runs/{run}/events", response_class=fastapi.sse.EventSourceResponse)
async def fastapi_events(run: int) -> AsyncIterator[fastapi.sse.ServerSentEvent]:
    async for seq, data, _ in _items(_fastapi_broadcast, run):
        yield fastapi.sse.ServerSentEvent(raw_data=data, id=str(seq))


fastapi_sse.router.routes.extend(control_routes(_fastapi_broadcast.count, _fastapi_broadcast.go))


# -- sse-starlette ----------------------------------------------------------------------------


def _sse_starlette_response(items: AsyncIterator[Item]) -> Response:
    async def events() -> AsyncIterator[Any]:
        async for seq, data, _ in items:
            yield sse_starlette.ServerSentEvent(data=data, id=str(seq))

    return sse_starlette.EventSourceResponse(events())


sse_starlette_app = _starlette_app(Broadcast(), _sse_starlette_response)


# -- plain Starlette, one pre-framed chunk per event -----------------------------------------


def _plain_response(items: AsyncIterator[Item]) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        async for _, _, frame in items:
            yield frame

    return StreamingResponse(chunks(), media_type="text/event-stream")


starlette_plain = _starlette_app(Broadcast(), _plain_response)
