"""The example's pipelines behind one of the two HTTP instrumentations, with every span kept.

`FRAMEWORK_TELEMETRY=builtin`: FastAPI's own telemetry (on because the global
provider is an SDK one); `=contrib`: opentelemetry-instrumentation-fastapi with
its per-chunk `http send` / `http receive` spans left on. `GET /test/spans`
lists every finished span's name, so a test can see the framework's spans exist
and that none of them became an event.
"""

from __future__ import annotations

import importlib
import os

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otelstream import EventStreamProcessor, MemoryHub
from otelstream.fastapi import create_router

pipelines = importlib.import_module("examples.fastapi-telemetry.pipelines")

hub = MemoryHub()
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(EventStreamProcessor(hub))
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

app = FastAPI()
app.include_router(create_router(hub=hub, pipelines=pipelines.PIPELINE_REGISTRY))


@app.get("/test/spans")
async def spans() -> list[str]:
    return [span.name for span in exporter.get_finished_spans()]


if os.environ["FRAMEWORK_TELEMETRY"] == "contrib":
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
