"""otelstream.testing's own helpers, against a real server: what users' tests lean on."""

from __future__ import annotations

import threading

import httpx
import pytest
from fastapi import FastAPI

from otelstream.client import Client
from otelstream.fastapi import create_router
from otelstream.testing import UvicornServer, wait_for_run
from tests.conftest import make_telemetry


def test_wait_for_run_returns_the_ended_run_and_times_out_on_a_running_one() -> None:
    telemetry = make_telemetry()
    gate = threading.Event()
    app = FastAPI()
    app.include_router(
        create_router(
            hub=telemetry.hub,
            pipelines={"quick": lambda: None, "held": lambda: gate.wait(10)},
            tracer_provider=telemetry.provider,
            prefix="/otel",
        )
    )
    try:
        with (
            UvicornServer(app) as server,
            httpx.Client(base_url=f"{server.url}/otel", timeout=10) as http,
            Client(f"{server.url}/otel") as client,
        ):
            quick = client.start("quick").run_id
            for reader in (http, client):
                run = wait_for_run(reader, quick)
                assert (run["run_id"], run["status"]) == (quick, "success")
            held = client.start("held").run_id
            with pytest.raises(TimeoutError, match=f"run {held} is still running after 0.2 s"):
                wait_for_run(http, held, timeout=0.2)
            gate.set()
            assert wait_for_run(client, held)["status"] == "success"
    finally:
        gate.set()
        telemetry.provider.shutdown()


def test_next_batch_reads_any_hubs_frames_back_as_events() -> None:
    """`otelstream.testing.next_batch` on a subscription that is not the shared engine's (a
    hub of one's own): its frames, joined in a chunk, come back as events and notices."""
    import asyncio

    from otelstream.events import Event
    from otelstream.events._wire import notice_frame
    from otelstream.hubs._entries import Notice
    from otelstream.testing import next_batch

    run_id = "c" * 32
    sent = [
        Event("task_started", "a\n", run_id, 2, 1, 0, seq=1),
        Event("x", "b", run_id, 3, 1, 0, seq=2),
    ]
    chunks: list[bytes | None] = [
        b"".join(event.sse for event in sent) + notice_frame("stream_overflow", run_id, 2),
        b"",
        None,
    ]

    class OwnSubscription:
        last_seq = 0

        async def next_frames(self, timeout: float) -> bytes | None:
            return chunks.pop(0)

    async def read() -> list[list[Event] | None]:
        subscription = OwnSubscription()
        return [await next_batch(subscription, 1) for _ in range(3)]  # type: ignore[arg-type]

    first, empty, end = asyncio.run(read())
    assert first is not None and [event.sse for event in first[:2]] == [e.sse for e in sent]
    assert isinstance(first[2], Notice) and first[2].type == "stream_overflow"
    assert (empty, end) == ([], None)
