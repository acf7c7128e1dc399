"""EventStreamResponse (`_server/sse.py`) driven as an ASGI app: a real MemoryHub run, and an
ASGI `send`/`receive` pair playing the server, so each ending of a stream is seen byte by byte.

The HTTP path through uvicorn is covered by test_router.py and test_shutdown.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.types import Message

from otelstream import streamed_run
from otelstream._server.sse import SSE_HEADERS, EventStreamResponse, OpenStreams
from otelstream.events import KEEPALIVE
from tests.conftest import Telemetry


class Client:
    """The other side of one response: what was sent, and a disconnect on demand."""

    def __init__(self, block_writes: bool = False) -> None:
        self.start: Message | None = None
        self.chunks: list[bytes] = []
        self.ended = False
        self.block_writes = block_writes
        self.leave = asyncio.Event()
        self.wrote = asyncio.Event()

    async def receive(self) -> Message:
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
            return
        if self.block_writes and message.get("body"):
            await asyncio.Event().wait()  # a client whose socket buffer never drains
        self.chunks.append(message.get("body", b""))
        self.ended = not message.get("more_body", False)
        self.wrote.set()

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def messages(self) -> list[dict[str, Any]]:
        return [
            json.loads(line[len(b"data: ") :])
            for line in self.body.split(b"\n")
            if line.startswith(b"data: ")
        ]


def finished_run(telemetry: Telemetry, tasks: int = 2) -> str:
    with streamed_run("p", tracer_provider=telemetry.provider) as run:
        for n in range(tasks):
            with telemetry.tracer.start_as_current_span(f"task:t{n}"):
                pass
    return run.run_id


def respond(
    telemetry: Telemetry, run_id: str, client: Client, after: int = 0, **options: Any
) -> Callable[[], Awaitable[None]]:
    options.setdefault("keepalive", 10.0)
    response = EventStreamResponse(telemetry.hub.subscribe(run_id, after), run_id, **options)

    async def call() -> None:
        await response({"type": "http"}, client.receive, client.send)

    call.response = response  # type: ignore[attr-defined]
    return call


def test_a_finished_run_is_sent_whole_then_the_response_ends(telemetry: Telemetry) -> None:
    run_id = finished_run(telemetry)
    client = Client()
    asyncio.run(respond(telemetry, run_id, client, retry_ms=1000)())
    assert client.start is not None and client.start["status"] == 200
    headers = dict(client.start["headers"])
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert all(headers[k.encode()] == v.encode() for k, v in SSE_HEADERS.items())
    assert client.ended
    first, *rest = client.body.split(b"\n\n")
    # the retry field rides in the first message, after its id and data: readers that take a
    # message's first line for its id still do
    assert first.split(b"\n")[0] == b"id: 1" and first.split(b"\n")[-1] == b"retry: 1000"
    assert [m["seq"] for m in client.messages()] == [1, 2, 3, 4, 5, 6]
    assert b"retry:" not in b"\n\n".join(rest)


def test_headers_are_taken_as_starlette_takes_them(telemetry: Telemetry) -> None:
    run_id = finished_run(telemetry, tasks=0)
    client = Client()
    headers = {"X-Team": "a", "Cache-Control": "no-store"}
    asyncio.run(respond(telemetry, run_id, client, headers=headers)())
    assert client.start is not None
    sent = client.start["headers"]
    assert dict(sent) == {
        b"content-type": b"text/event-stream; charset=utf-8",
        b"cache-control": b"no-store",
        b"x-accel-buffering": b"no",
        b"x-team": b"a",
    }
    assert len(sent) == 4, "one of each, and no content-length on a stream"


def test_a_stream_resumes_after_the_given_event(telemetry: Telemetry) -> None:
    run_id = finished_run(telemetry)
    client = Client()
    asyncio.run(respond(telemetry, run_id, client, after=4)())
    assert [m["seq"] for m in client.messages()] == [5, 6]
    assert client.body.startswith(b"id: 5\n")


def test_an_idle_stream_sends_keepalive_comments(telemetry: Telemetry) -> None:
    client = Client()

    async def scenario() -> None:
        with streamed_run("idle", tracer_provider=telemetry.provider) as run:
            call = respond(telemetry, run.run_id, client, keepalive=0.05)
            stream = asyncio.create_task(call())
            await asyncio.sleep(0.3)
            assert KEEPALIVE in client.chunks  # nothing happened: comments keep proxies open
            client.leave.set()
            await asyncio.wait_for(stream, 5)
        assert telemetry.hub.subscriber_count(run.run_id) == 0

    asyncio.run(scenario())
    assert not client.ended  # the client left: there was nobody to end the response for


def test_stop_ends_a_running_run_stream_with_a_server_shutdown_notice(
    telemetry: Telemetry,
) -> None:
    client = Client()
    streams = OpenStreams(limit=1)

    async def scenario() -> None:
        with streamed_run("long", tracer_provider=telemetry.provider) as run:
            with telemetry.tracer.start_as_current_span("task:first"):
                pass
            stream = asyncio.create_task(respond(telemetry, run.run_id, client, streams=streams)())
            await asyncio.wait_for(client.wrote.wait(), 5)
            assert streams.full()
            streams.close_all()
            await asyncio.wait_for(stream, 5)
            assert not streams.full() and not streams.streams

    asyncio.run(scenario())
    *events, notice = client.messages()
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert (notice["type"], notice["last_seq"]) == ("server_shutdown", 3)
    assert b"id:" not in client.body.split(b"\n\n")[-2]  # the notice has no id: a client resumes
    assert client.ended


def test_a_client_that_stops_reading_is_cut_after_the_send_timeout(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = finished_run(telemetry)
    client = Client(block_writes=True)

    async def scenario() -> None:
        await asyncio.wait_for(respond(telemetry, run_id, client, send_timeout=0.1)(), 5)

    with caplog.at_level(logging.WARNING, logger="otelstream"):
        asyncio.run(scenario())
    assert not client.ended  # left unfinished: uvicorn closes the connection
    assert any("did not read its stream for" in r.getMessage() for r in caplog.records)
    assert telemetry.hub.subscriber_count(run_id) == 0
