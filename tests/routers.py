"""The router under test: three small pipelines (`two_steps`, `gated`, `failing`) served on a
real uvicorn, and the `App` that drives it. Shared by the router, access and runs-list tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from otelstream.fastapi import create_router
from otelstream.testing import UvicornServer, wait_for_run

from .conftest import Gate, Telemetry, make_telemetry

TIMEOUT = httpx.Timeout(10.0)


def pipelines_for(provider: TracerProvider, gate: Gate) -> dict[str, Callable[..., Any]]:
    tracer = provider.get_tracer("pipelines")

    def two_steps(rows: int = 3) -> None:
        """extract, then load."""
        with tracer.start_as_current_span("task:extract"):
            pass
        with tracer.start_as_current_span("task:load") as span:
            span.set_attribute("rows", rows)

    def gated() -> None:
        with tracer.start_as_current_span("task:before"):
            pass
        gate()
        with tracer.start_as_current_span("task:after"):
            pass

    def failing() -> None:
        with tracer.start_as_current_span("task:ok"):
            pass
        with tracer.start_as_current_span("task:broken"):
            raise RuntimeError("disk full")

    return {"two_steps": two_steps, "gated": gated, "failing": failing}


class App:
    def __init__(self, telemetry: Telemetry, server: UvicornServer, gate: Gate) -> None:
        self.telemetry = telemetry
        self.hub = telemetry.hub
        self.url = server.url
        self.gate = gate
        self.client = httpx.Client(base_url=server.url, timeout=TIMEOUT)
        self.blocking = threading.Event()

    def run(self, pipeline: str, **parameters: Any) -> str:
        response = self.client.post(
            "/runs", json={"pipeline_name": pipeline, "parameters": parameters}
        )
        assert response.status_code == 202, response.text
        run_id: str = response.json()["run_id"]
        return run_id

    def wait_until_finished(self, run_id: str) -> dict[str, Any]:
        return wait_for_run(self.client, run_id)


def serve_app(
    *,
    otlp_ingest: bool = False,
    otlp_grpc_endpoint: str | None = None,
    port: int | None = None,
    **settings: Any,
) -> Iterator[App]:
    """The router on a real uvicorn (on `port`, else a free one), its OTLP receivers on with
    `otlp_ingest` and `otlp_grpc_endpoint`; the hub and the router share `settings`. Every test
    app with a hub and the router is this one."""
    telemetry, gate = make_telemetry(**settings), Gate()
    app = FastAPI()
    app.include_router(
        create_router(
            hub=telemetry.hub,
            pipelines=pipelines_for(telemetry.provider, gate),
            tracer_provider=telemetry.provider,
            otlp_ingest=otlp_ingest,
            otlp_grpc_endpoint=otlp_grpc_endpoint,
        )
    )

    entered = threading.Event()

    @app.post("/test/block-loop")
    async def block_loop(seconds: float) -> None:
        entered.set()
        time.sleep(seconds)  # blocks the event loop on purpose

    with UvicornServer(app, **({} if port is None else {"port": port})) as server:
        client = App(telemetry, server, gate)
        client.blocking = entered
        yield client
        gate.opened.set()
        client.client.close()
    telemetry.provider.shutdown()


TWO_STEPS = [
    ("pipeline_started", "two_steps"),
    ("task_started", "extract"),
    ("task_completed", "extract"),
    ("task_started", "load"),
    ("task_completed", "load"),
    ("pipeline_completed", "two_steps"),
]
