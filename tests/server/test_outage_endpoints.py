"""503, never 500: while Redis is away, every endpoint that needs the hub answers 503 with
`Retry-After` (a browser and an OTLP exporter both retry it; a 404 would say the run is gone).

The endpoints are the app's own, read from its OpenAPI document, so a new endpoint is covered
the day it is added (and fails here until it answers 503, or is listed as not needing the hub).
A real uvicorn process on a real redis-server that the module stops under it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from otelstream import MemoryHub, Settings
from otelstream.fastapi import create_router
from otelstream.testing import read_events
from tests.conftest import app_process
from tests.redis_server import RedisServer

APP = "tests.apps.redis_example:app"
RUN = {"pipeline_name": "example", "parameters": {"seconds": 0.01}}
NEEDS_NO_HUB = {("GET", "/pipelines")}
"""Endpoints that answer from the process alone, Redis or not."""


def _operations() -> list[tuple[str, str]]:
    """Every (method, path) of the API, the OTLP receiver included."""
    app = FastAPI()
    hub = MemoryHub(Settings())
    app.include_router(create_router(hub=hub, otlp_ingest=True, graceful_shutdown=False))
    return sorted(
        (method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item
    )


def _body(method: str, path: str, run_id: str) -> dict[str, Any]:
    """A request each endpoint would take were Redis there: it gets as far as the hub."""
    span = {"traceId": run_id, "spanId": "00000000000000aa", "name": "remote", "kind": 2}
    span |= {"startTimeUnixNano": "1", "endTimeUnixNano": "2"}
    record = {"traceId": run_id, "spanId": "00000000000000aa", "body": {"stringValue": "hi"}}
    bodies = {
        ("POST", "/runs"): RUN,
        ("POST", "/run-workflow"): RUN,
        ("POST", "/v1/traces"): {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]},
        ("POST", "/v1/logs"): {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]},
    }
    return bodies.get((method, path), {})


@pytest.fixture(scope="module", params=["stopped", "paused"])
def without_redis(
    request: pytest.FixtureRequest, redis: RedisServer
) -> Iterator[tuple[httpx.Client, str]]:
    """The app, a run it streamed, and then no Redis: stopped (connections refused), or paused
    with SIGSTOP (a host that no longer answers: every command runs into its timeout)."""
    if redis.process is None:
        redis.start()
    redis.command("FLUSHALL")
    # a paused Redis answers nothing: each request is told after the Redis timeout (1 s here)
    env = {"OTELSTREAM_REDIS_TIMEOUT_SECONDS": "1", "OTELSTREAM_OTLP_INGEST": "true"}
    with app_process(APP, OTELSTREAM_HUB=redis.url, **env) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            run_id = client.post("/runs", json=RUN).json()["run_id"]
            assert read_events(client, "GET", f"/runs/{run_id}/events")[-1]["status"] == "success"
            if request.param == "stopped":
                redis.stop()
            else:
                os.kill(redis.pid, signal.SIGSTOP)
            try:
                yield client, run_id
            finally:
                if request.param == "stopped":
                    redis.start()
                else:
                    os.kill(redis.pid, signal.SIGCONT)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("method", "path"), _operations())
def test_every_endpoint_answers_503_while_redis_is_away(
    without_redis: tuple[httpx.Client, str], method: str, path: str
) -> None:
    client, run_id = without_redis
    url = path.replace("{run_id}", run_id).replace("{name}", RUN["pipeline_name"])
    body = _body(method, path, run_id) if method in ("POST", "PUT", "PATCH") else None
    with client.stream(method, url, json=body) as response:  # a stream's 200 would not end
        response.read() if response.status_code != 200 else None
        status, headers = response.status_code, response.headers
        text = "" if status == 200 else response.text
    if (method, path) in NEEDS_NO_HUB:
        assert status == 200
        return
    assert status == 503, f"{method} {path}: {status} {text}"
    assert headers.get("retry-after", "").isdigit(), f"{method} {path}: no Retry-After"
