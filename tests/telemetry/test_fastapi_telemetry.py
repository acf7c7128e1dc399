"""FastAPI's own telemetry beside otelstream: `untraced_streams` leaves only the streams out."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from otelstream.fastapi import create_router, untraced_streams
from otelstream.testing import UvicornServer, read_events, wait_for_run
from tests.conftest import make_telemetry


def test_streams_are_left_out_of_fastapi_telemetry_and_other_routes_are_not() -> None:
    telemetry = make_telemetry()
    tracer = telemetry.provider.get_tracer("pipelines")

    def step() -> None:
        with tracer.start_as_current_span("task:step"):
            pass

    app = FastAPI(telemetry={"tracer_provider": telemetry.provider, "exclude": untraced_streams})
    router = create_router(
        hub=telemetry.hub,
        pipelines={"step": step},
        tracer_provider=telemetry.provider,
        graceful_shutdown=False,
    )
    app.include_router(router)
    with (
        UvicornServer(app) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        started = client.post("/runs", json={"pipeline_name": "step"}).json()
        events = read_events(client, "GET", started["events_url"])
        assert [e["type"] for e in events][-1] == "pipeline_completed"
        wait_for_run(client, started["run_id"])
    telemetry.provider.force_flush()
    servers = {
        span.attributes.get("http.route")
        for span in telemetry.exporter.get_finished_spans()
        if span.kind.name == "SERVER" and span.attributes
    }
    assert "/runs" in servers and "/runs/{run_id}" in servers  # other routes: traced
    assert "/runs/{run_id}/events" not in servers  # the stream: not
    names = [span.name for span in telemetry.exporter.get_finished_spans()]
    assert "pipeline:step" in names and "task:step" in names  # the run: traced all the same
