"""The example app on a RedisHub (`OTELSTREAM_HUB=redis://…`), with the worker pipelines.

What `examples/fastapi-telemetry/main.py` becomes with the issue-4 diff applied;
kept here so the tests run several uvicorn processes on one Redis before it is.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from otelstream import Settings
from otelstream.fastapi import create_router
from otelstream.hubs.redis import RedisHub
from otelstream.telemetry import setup_telemetry

pipelines = importlib.import_module("examples.fastapi-telemetry.pipelines")
workers = importlib.import_module("examples.fastapi-telemetry.worker_pipelines")

hub = RedisHub(os.environ["OTELSTREAM_HUB"], Settings())
telemetry = setup_telemetry(hub)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    telemetry.shutdown()
    hub.close()


app = FastAPI(lifespan=lifespan)
app.include_router(
    create_router(
        hub=hub,
        pipelines={**pipelines.PIPELINE_REGISTRY, **workers.worker_pipelines(hub)},
        tracer_provider=telemetry.provider,
    )
)
