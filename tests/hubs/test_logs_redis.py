"""Logs, progress and the runs list through the Redis hub: a run started on one worker, seen
live from another."""

from __future__ import annotations

import json

from otelstream.testing import iter_sse, read_events
from tests.conftest import workers_on
from tests.redis_server import RedisServer

APP = "tests.apps.redis_example:app"


def test_a_runs_logs_and_progress_reach_another_worker_live(empty_redis: RedisServer) -> None:
    with workers_on(empty_redis.url) as (on_a, on_b):
        body = {"pipeline_name": "ingest", "parameters": {"files": 4, "seconds": 0.2}}
        run_id = on_a.post("/runs", json=body).json()["run_id"]
        live = read_events(on_b, "GET", f"/runs/{run_id}/events")
        again = read_events(on_a, "GET", f"/runs/{run_id}/events")
        # the runs list and its stream on B know the run A started
        listed = on_b.get("/runs", params={"pipeline": "ingest"}).json()["runs"]
        lifecycle = []
        for message in iter_sse(on_b, "GET", "/runs/live"):
            lifecycle.append(json.loads(message.data))
            if lifecycle[-1]["type"] == "run_ended":
                break
    assert [(run["run_id"], run["status"]) for run in listed] == [(run_id, "success")]
    assert [(e["type"], e["run_id"]) for e in lifecycle] == [
        ("run_started", run_id),
        ("run_ended", run_id),
    ]
    kinds = [event["type"] for event in live]
    read_ended = kinds.index("task_completed")
    assert kinds[:read_ended].count("task_log") == 4  # while read_files ran
    logs = [event["message"] for event in live if event["type"] == "task_log"]
    assert logs == [f"reading part-00{i}.csv" for i in range(1, 5)] + ["indexed 4 files"]
    progress = [event for event in live if event["type"] == "task_progress"]
    assert (progress[-1]["done"], progress[-1]["total"], progress[-1]["message"]) == (
        4,
        4,
        "part-004.csv",
    )
    assert live == again  # the same events, the same seqs, on both workers
