"""otelstream's OTLP receiver on, for the ingest part: runs are made by publishing their start
(`POST /bench/runs`), spans of those runs arrive over OTLP/HTTP, and `POST /bench/end` ends them
so that every subscriber's stream closes and can be checked to its last id.

The replay buffer holds every event of a run, so that a subscriber the burst leaves behind is
not cut: the part measures ingest and fan-out, not eviction.
"""

from __future__ import annotations

import os
import time

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.servers._control import control_routes
from otelstream import MemoryHub, Settings
from otelstream.events import Event
from otelstream.fastapi import create_router

settings = Settings(replay_events=1_000_000, otlp_token=None, max_open_spans=1_000_000)
hub = MemoryHub(settings)
app = FastAPI(telemetry={"tracing": False})
app.include_router(create_router(hub=hub, settings=settings, otlp_ingest=True))
app.router.routes.extend(control_routes(lambda: hub.subscriber_count()))
_runs: list[tuple[str, int]] = []


async def start_runs(request: Request) -> Response:
    """`{"count": N}`: N runs started (their `pipeline_started` published), ids answered."""
    count = int((await request.json())["count"])
    started = []
    for _ in range(count):
        run_id, root = os.urandom(16).hex(), int.from_bytes(os.urandom(8)) or 1
        hub.publish(run_id, Event("pipeline_started", "bench", run_id, root, None, time.time_ns()))
        _runs.append((run_id, root))
        started.append({"run_id": run_id, "root": f"{root:016x}"})
    return JSONResponse({"runs": started})


async def end_runs(request: Request) -> Response:
    """Every run started here ends (`pipeline_completed`)."""
    for run_id, root in _runs:
        event = Event("pipeline_completed", "bench", run_id, root, None, time.time_ns())
        event.status = "success"
        hub.publish(run_id, event)
    _runs.clear()
    return JSONResponse({"ended": True})


app.router.routes.extend(
    [
        Route("/bench/runs", start_runs, methods=["POST"]),
        Route("/bench/end", end_runs, methods=["POST"]),
    ]
)
