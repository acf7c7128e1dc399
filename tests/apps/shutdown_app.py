"""A pipeline of many short steps, to be signalled in the middle of its run."""

from __future__ import annotations

import time

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from otelstream import EventStreamProcessor, MemoryHub
from otelstream.fastapi import create_router

hub = MemoryHub()
provider = TracerProvider()
provider.add_span_processor(EventStreamProcessor(hub))
tracer = provider.get_tracer(__name__)


def steps(count: int = 5, seconds: float = 0.1) -> None:
    for n in range(count):
        with tracer.start_as_current_span(f"task:step_{n}"):
            time.sleep(seconds)


def blocked(seconds: float = 60) -> None:
    """Blocks where no cancellation reaches: no span opened, no check made."""
    with tracer.start_as_current_span("task:block"):
        time.sleep(seconds)


app = FastAPI()
app.include_router(
    create_router(hub=hub, pipelines={"steps": steps, "blocked": blocked}, tracer_provider=provider)
)
