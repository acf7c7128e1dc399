"""A run waits for the work it handed to another process and did not wait for itself (a
`Popen` left running, as a Celery `delay()` without `.get()`): on a real redis-server, with a
real worker process that finishes, and one killed in the middle of its task."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from otelstream.testing import read_events
from tests.conftest import app_subprocess, shape
from tests.redis_server import RedisServer, redis_server

APP = "tests.apps.handoff_app:app"
WAIT = 20.0  # a worker process starts in a few seconds on a loaded machine


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    yield from redis_server()


@pytest.mark.timeout(200)
def test_a_hand_off_not_waited_for_streams_in_its_run_or_the_run_says_it_is_out(
    redis: RedisServer,
) -> None:
    env = {"OTELSTREAM_HUB": redis.url, "OTELSTREAM_HANDOFF_WAIT_SECONDS": str(WAIT)}
    with (
        app_subprocess(APP, **env) as (url, process),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        body = {"pipeline_name": "finishing", "parameters": {}}
        events = read_events(client, "POST", "/run-workflow", json=body)
        assert shape(events) == [
            ("pipeline_started", "finishing"),
            ("task_started", "dispatch"),
            ("task_completed", "dispatch"),
            ("task_started", "crunch"),
            ("task_started", "crunch_part_1"),
            ("task_completed", "crunch_part_1"),
            ("task_started", "crunch_part_2"),
            ("task_completed", "crunch_part_2"),
            ("task_completed", "crunch"),
            ("pipeline_completed", "finishing"),
        ], events
        assert events[-1]["status"] == "success"
        run = client.get(f"/runs/{events[0]['run_id']}").json()
        (dispatch,) = run["tree"]["children"]
        (crunch,) = dispatch["children"]  # the task that injected the carrier is its parent
        assert (crunch["name"], crunch["status"], len(crunch["children"])) == (
            "crunch",
            "success",
            2,
        )

        body = {"pipeline_name": "dying", "parameters": {}}
        events = read_events(client, "POST", "/run-workflow", json=body)
        run_id = events[0]["run_id"]
        assert events[-1]["type"] == "pipeline_completed" and events[-1]["status"] == "success"
        logs = [e for e in events if e["type"] == "task_log"]
        assert any("1 hand-off(s) still out" in str(e["message"]) for e in logs), events
        assert ("task_started", "crunch_part_1") in shape(events)
        # the task left out ends in the stream, before the run: the page and `tail` end it too
        unfinished = [(e["type"], e["name"]) for e in events if e.get("error_type") == "Unfinished"]
        assert ("task_error", "crunch") in unfinished, events
        assert all(events.index(e) < len(events) - 1 for e in events if e["type"] == "task_error")
        run = client.get(f"/runs/{run_id}").json()
        (crunch,) = run["tree"]["children"][0]["children"]
        assert (crunch["name"], crunch["status"], crunch["error_type"]) == (
            "crunch",
            "error",
            "Unfinished",
        )
        process.terminate()
        assert process.stdout is not None
        output = process.stdout.read()
    assert f"run {run_id} ends with 1 hand-off(s) still out" in output, output
