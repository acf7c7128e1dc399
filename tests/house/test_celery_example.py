"""examples/celery-worker as its README runs it: a prefork Celery worker started by
`opentelemetry-instrument` only, the example app with `CELERY_BROKER` set, both on a real
redis-server; the app's `thumbnails` run streams every worker span, ended, before its end."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx

from otelstream.testing import read_events
from tests.conftest import EXAMPLE, ROOT, app_process
from tests.redis_server import RedisServer

WORKER = ROOT / "examples" / "celery-worker"


def test_the_example_app_streams_its_zero_code_celery_workers_spans(
    empty_redis: RedisServer,
) -> None:
    env = {
        "OTELSTREAM_HUB": empty_redis.url,
        "CELERY_BROKER": empty_redis.url[: -len("/0")] + "/1",
        "OTEL_PROPAGATORS": "tracecontext,baggage,otelstream_run",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "console",  # the distro builds its logger provider
    }
    bin_dir = Path(sys.executable).parent
    worker = subprocess.Popen(
        [
            *(str(bin_dir / "opentelemetry-instrument"), str(bin_dir / "celery"), "-A", "tasks"),
            *("worker", "--pool=prefork", "-c", "2", "--loglevel=warning", "--without-mingle"),
        ],
        cwd=WORKER,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with app_process(EXAMPLE, **env) as url, httpx.Client(base_url=url, timeout=90) as client:
            listed = [p["name"] for p in client.get("/pipelines").json()["pipelines"]]
            assert "thumbnails" in listed
            body = {"pipeline_name": "thumbnails", "parameters": {"images": 2}}
            events = read_events(client, "POST", "/run-workflow", json=body)
    finally:
        worker.kill()
        worker.wait(10)
    kinds = Counter((e["type"], e["name"]) for e in events)
    told = [(e["type"], e["name"]) for e in events]
    for name in ("run/thumbnails.resize", "resize-image"):
        assert kinds[("task_started", name)] == 2, told
        assert kinds[("task_completed", name)] == 2, told
    logged = [e for e in events if e["type"] == "task_log"]
    assert sorted(e["message"] for e in logged) == [
        "resized img0.png to 256 px",
        "resized img1.png to 256 px",
    ], told
    resized = {e["span_id"] for e in events if e["name"] == "resize-image"}
    assert {e["span_id"] for e in logged} == resized  # each under its own task's span
    sends = {e["span_id"] for e in events if e["name"] == "apply_async/thumbnails.resize"}
    tasks = [e for e in events if e["type"] == "task_started" and e["name"].startswith("run/")]
    assert len(sends) == 2 and {e["parent_span_id"] for e in tasks} == sends  # under its send
    assert not [e for e in events if e.get("error_type") == "Unfinished"]
    assert events[-1]["type"] == "pipeline_completed" and events[-1]["status"] == "success"
