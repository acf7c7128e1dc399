"""The original FastAPI telemetry example, rebuilt on otelstream.

    uvicorn examples.fastapi-telemetry.main:app
    curl -N -X POST localhost:8000/run-workflow -H 'Content-Type: application/json' \
        -d '{"pipeline_name": "example"}'
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otelstream import EventStreamProcessor, MemoryHub
from otelstream.fastapi import create_router

from .pipelines import PIPELINE_REGISTRY

hub = MemoryHub()
provider = (
    TracerProvider()
)  # service name and resource from OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
provider.add_span_processor(EventStreamProcessor(hub))  # the one line that feeds the streams
if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)

app = FastAPI(title="otelstream example")
app.include_router(create_router(hub=hub, pipelines=PIPELINE_REGISTRY))
# One server span per request; no span per SSE chunk sent or body chunk received.
FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, exclude_spans=["send", "receive"])
