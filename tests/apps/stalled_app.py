"""A pipeline of large events, for a client that stops reading while the server shuts down."""

from __future__ import annotations

import time

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from otelstream import EventStreamProcessor, MemoryHub
from otelstream.fastapi import create_router

hub = MemoryHub()  # OTELSTREAM_ATTRIBUTE_ALLOWLIST=blob and a long OTELSTREAM_MAX_STRING_LENGTH
provider = TracerProvider()
provider.add_span_processor(EventStreamProcessor(hub))
tracer = provider.get_tracer(__name__)


def flood(count: int = 1_000, size: int = 100_000, seconds: float = 0.01) -> None:
    blob = {"blob": "x" * size}
    for n in range(count):
        with tracer.start_as_current_span(f"task:chunk_{n}", attributes=blob):
            time.sleep(seconds)


app = FastAPI()
app.include_router(create_router(hub=hub, pipelines={"flood": flood}, tracer_provider=provider))
