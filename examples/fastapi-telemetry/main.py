"""The original FastAPI telemetry example, rebuilt on otelstream.

    uvicorn examples.fastapi-telemetry.main:app
    curl -N -X POST localhost:8000/run-workflow -H 'Content-Type: application/json' \
        -d '{"pipeline_name": "example"}'

Telemetry comes from the standard variables (see `otelstream.telemetry`): with
none set, runs stream and nothing is exported; with
`OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317` the same spans also go to a
collector over OTLP/gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf` and port
4318 for OTLP/HTTP). A run's trace then reads: the HTTP request's server span,
`pipeline:{name}` under it, the task spans under that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from otelstream import Settings
from otelstream.fastapi import create_router
from otelstream.hubs import hub_from_settings
from otelstream.telemetry import setup_telemetry

from .celery_pipelines import celery_pipelines
from .pipelines import PIPELINE_REGISTRY
from .service_pipelines import service_pipelines
from .worker_pipelines import worker_pipelines

hub = hub_from_settings(Settings())  # OTELSTREAM_HUB: memory (default) or redis://host:port/db
# Builds the tracer provider from OTEL_* (or extends one that opentelemetry-instrument set up)
# and adds EventStreamProcessor(hub), the one processor that feeds the streams.
telemetry = setup_telemetry(hub)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    telemetry.shutdown()  # sends the spans still queued for export
    hub.close()  # a Redis hub writes what it still holds


app = FastAPI(title="otelstream example", lifespan=lifespan)
app.include_router(
    create_router(
        hub=hub,
        # "remote" needs Redis; "priced" a PRICING_URL (the Node service, examples/node-service);
        # "thumbnails" a CELERY_BROKER (the zero-code Celery worker, examples/celery-worker)
        pipelines={
            **PIPELINE_REGISTRY,
            **worker_pipelines(hub),
            **service_pipelines(),
            **celery_pipelines(),
        },
        tracer_provider=telemetry.provider,
    )
)
# One server span per request, parent of the run's pipeline span; incoming `traceparent` headers
# are honoured. No span per SSE chunk sent or body chunk received. FastAPI's own telemetry stands
# aside when this middleware is in the stack, so there is no second server span.
FastAPIInstrumentor.instrument_app(
    app, tracer_provider=telemetry.provider, exclude_spans=["send", "receive"]
)
