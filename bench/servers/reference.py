"""The original example's design, for comparison: a `queue.Queue` polled every 100 ms.

The span-producing thread is the same as otelstream's latency pipeline; a span
processor puts each ended span's event into the stream's queue, and the
`StreamingResponse` generator takes what is there and sleeps 100 ms when the
queue is empty, as the example did.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from bench.servers._control import control_routes
from bench.servers._pipeline import END_NS

_streams = 0


class QueueProcessor(SpanProcessor):
    """Every ended span becomes an event in one queue."""

    def __init__(self, events: queue.Queue[dict[str, Any] | None]) -> None:
        self.events = events

    def on_end(self, span: ReadableSpan) -> None:
        attributes = dict(span.attributes or {})
        self.events.put({"type": "task_completed", "name": span.name, "attributes": attributes})


def _produce(
    provider: TracerProvider,
    events: queue.Queue[dict[str, Any] | None],
    spans: int,
    interval: float,
) -> None:
    tracer = provider.get_tracer("bench")
    for _ in range(spans):
        with tracer.start_as_current_span("task:tick") as span:
            span.set_attribute(END_NS, time.monotonic_ns())
        time.sleep(interval)
    events.put(None)


app = FastAPI()


@app.get("/reference/stream")
async def stream(spans: int = 2_000, interval_ms: float = 2.0) -> StreamingResponse:
    events: queue.Queue[dict[str, Any] | None] = queue.Queue()
    provider = TracerProvider()
    provider.add_span_processor(QueueProcessor(events))
    producer = threading.Thread(
        target=_produce, args=(provider, events, spans, interval_ms / 1000), daemon=True
    )

    async def frames() -> AsyncIterator[str]:
        global _streams
        _streams += 1
        producer.start()
        try:
            while True:
                try:
                    event = events.get_nowait()
                except queue.Empty:
                    await asyncio.sleep(0.1)
                    continue
                if event is None:
                    return
                yield f"data: {json.dumps(event)}\n\n"
        finally:
            _streams -= 1

    return StreamingResponse(frames(), media_type="text/event-stream")


app.router.routes.extend(control_routes(lambda: _streams))
