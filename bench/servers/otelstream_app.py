"""otelstream served as a user serves it: create_router, and pipelines that only open spans.

The hub is the one `OTELSTREAM_HUB` names, as in an application: `memory` by
default, `redis://127.0.0.1:PORT/0` for part 5 (with its other `OTELSTREAM_REDIS_*`
settings from the environment too).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, cast

from fastapi import FastAPI, Request
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from bench.servers._control import FANOUT_TASK, control_routes
from otelstream import EventStreamProcessor, Settings
from otelstream.fastapi import create_router
from otelstream.hubs import Hub, hub_from_settings

END_NS = "bench.end_ns"

settings = Settings(
    # 100 fan-out runs are started before their subscribers connect; 8 workers (the default)
    # run them while the rest wait in the queue, which must hold them all.
    max_queued_runs=256,
    attribute_allowlist=frozenset({END_NS}),  # the latency pipeline's timestamps
)


class _CountingHub(Hub, Protocol):
    """`MemoryHub` and `RedisHub` both count the subscriptions open in this process."""

    def subscriber_count(self, run_id: str | None = None) -> int: ...


hub = cast(_CountingHub, hub_from_settings(settings))
provider = TracerProvider()
provider.add_span_processor(EventStreamProcessor(hub))
tracer = provider.get_tracer("bench")
gate = threading.Event()


def _wait_for_subscribers(count: int, timeout: float = 30.0) -> None:
    run_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
    deadline = time.monotonic() + timeout
    while hub.subscriber_count(run_id) < count and time.monotonic() < deadline:
        time.sleep(0.001)


def latency(spans: int = 2_000, interval_ms: float = 2.0) -> None:
    """Light load: a short span every `interval_ms`, stamped on the monotonic clock as it ends."""
    _wait_for_subscribers(1)
    interval = interval_ms / 1000
    for _ in range(spans):
        with tracer.start_as_current_span("task:tick") as span:
            span.set_attribute(END_NS, time.monotonic_ns())
        time.sleep(interval)


def fanout(events: int = 1_000) -> None:
    """`events` events in all (root start and end included), as fast as spans can be opened."""
    gate.wait(timeout=600)
    for _ in range((events - 2) // 2):
        with tracer.start_as_current_span(FANOUT_TASK):
            pass


async def _go(request: Request) -> None:
    gate.set()


app = FastAPI()
app.include_router(
    create_router(
        hub=hub,
        pipelines={"latency": latency, "fanout": fanout},
        tracer_provider=provider,
        settings=settings,
    )
)
app.router.routes.extend(control_routes(lambda: hub.subscriber_count(), _go))
