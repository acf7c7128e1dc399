"""Pipelines written with logfire, and the example app with logfire owning the tracer provider.

    uvicorn --factory examples.fastapi-telemetry.logfire_pipelines:create_app
    curl -N -X POST localhost:8000/run-workflow -H 'Content-Type: application/json' \
        -d '{"pipeline_name": "logfire"}'

Task code uses `logfire.span("task:{name}", name=...)`; otelstream shows the
rendered name (`ingest`, not `task:{name}`). Log calls (`logfire.info`,
`logfire.error`) are zero-duration spans of their own: they are never tasks,
and an error *logged* inside a task leaves the task `task_completed`; only a
task span that fails (an exception escaping it) becomes `task_error`.

Here logfire exports as it always does, except to Logfire itself (pass
`send_to_logfire=True` and a token for that): to `OTEL_EXPORTER_OTLP_ENDPOINT`
over OTLP/HTTP (port 4318 of a collector).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated

import logfire
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from pydantic import Field

from otelstream import EventStreamProcessor, MemoryHub
from otelstream.fastapi import create_router
from otelstream.sampling import sampler_from_env

from .pipelines import PIPELINE_REGISTRY, Pipeline, Seconds, wait


def ingest(rows: int, seconds: float) -> list[int]:
    with logfire.span("task:{name}", name="ingest", rows=rows):
        wait(seconds)
        logfire.info("read {rows} rows", rows=rows)
        return list(range(rows))


def score(values: list[int], seconds: float) -> float:
    with logfire.span("task:{name}", name="score"):
        wait(seconds)
        if not values:
            # logged, not raised: the task still completes
            logfire.error("nothing to score")
            return 0.0
        return sum(values) / len(values)


def publish(result: float, fail: bool) -> float:
    with logfire.span("task:{name}", name="publish", result=result):
        if fail:
            raise RuntimeError(f"could not publish score {result}")
        return result


def logfire_pipeline(
    rows: Annotated[int, Field(ge=0, le=10_000)] = 5, seconds: Seconds = 0.2, fail: bool = False
) -> Pipeline:
    """ingest, score and publish, written with logfire spans and logs."""
    return Pipeline(lambda: publish(score(ingest(rows, seconds), seconds), fail))


LOGFIRE_PIPELINES = {"logfire": partial(logfire_pipeline)}


def create_app() -> FastAPI:
    """The example app, with logfire's provider and otelstream's processor added to it."""
    hub = MemoryHub()
    logfire.configure(
        send_to_logfire=False,
        console=False,
        metrics=False,
        # a sampler that drops a trace for export still records a streamed run
        sampling=logfire.SamplingOptions(head=sampler_from_env()),
        additional_span_processors=[EventStreamProcessor(hub)],
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        logfire.force_flush()  # sends the spans still queued for export

    app = FastAPI(title="otelstream example (logfire)", lifespan=lifespan)
    app.include_router(create_router(hub=hub, pipelines={**PIPELINE_REGISTRY, **LOGFIRE_PIPELINES}))
    FastAPIInstrumentor.instrument_app(app, exclude_spans=["send", "receive"])
    return app
