"""The example app on a RedisHub with two pipelines that hand work to a worker process and do
not wait for it (as a Celery `delay()` without `.get()`, or a `Popen` left running): in one
the worker finishes, in the other it dies (`kill -9`) in the middle of its task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from opentelemetry import trace

from otelstream import Settings, propagation
from otelstream.fastapi import create_router
from otelstream.hubs.redis import RedisHub
from otelstream.telemetry import setup_telemetry

hub = RedisHub(os.environ["OTELSTREAM_HUB"], Settings())
telemetry = setup_telemetry(hub)
tracer = trace.get_tracer(__name__)
_ROOT = Path(__file__).resolve().parents[2]


def hand_off(die: bool) -> None:
    with tracer.start_as_current_span("task:dispatch"):
        carrier = propagation.inject({})
        subprocess.Popen(  # not waited for: the run's end waits for the hand-off instead
            [sys.executable, "-m", "tests.apps.handoff_worker", json.dumps(carrier), str(die)],
            cwd=_ROOT,
        )


def finishing() -> None:
    hand_off(die=False)


def dying() -> None:
    hand_off(die=True)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    telemetry.shutdown()
    hub.close()


app = FastAPI(lifespan=lifespan)
app.include_router(
    create_router(
        hub=hub,
        pipelines={"finishing": finishing, "dying": dying},
        tracer_provider=telemetry.provider,
    )
)
