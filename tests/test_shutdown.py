"""SIGTERM to uvicorn: runs get their grace period, then every open stream ends with a message."""

from __future__ import annotations

import json
import signal

import httpx

from otelstream.testing import iter_sse

from .conftest import app_subprocess

APP = "tests.apps.shutdown_app:app"


def stream_then_signal(grace: str, count: int) -> tuple[list[dict[str, object]], int, str]:
    env = {"OTELSTREAM_SHUTDOWN_GRACE_SECONDS": grace}
    with app_subprocess(APP, **env) as (url, process):
        with httpx.Client(base_url=url, timeout=20) as client:
            body = {"pipeline_name": "steps", "parameters": {"count": count, "seconds": 0.05}}
            messages = iter_sse(client, "POST", "/run-workflow", json=body)
            events = [json.loads(next(messages).data)]
            process.send_signal(signal.SIGTERM)
            events += [json.loads(message.data) for message in messages]
        code = process.wait(timeout=20)
        output = process.communicate()[0]
    return events, code, output


def test_a_run_that_ends_within_the_grace_period_streams_to_its_end() -> None:
    events, code, _ = stream_then_signal(grace="30", count=6)
    assert [e["type"] for e in events][-1] == "pipeline_completed"
    assert events[-1]["status"] == "success"
    assert [e["seq"] for e in events] == list(range(1, 15))
    assert code == -signal.SIGTERM  # uvicorn re-raises the signal once it has shut down


def test_past_the_grace_period_streams_end_with_a_message_and_runs_are_cancelled() -> None:
    events, code, output = stream_then_signal(grace="0.2", count=2_000)  # 100 s of work
    last = events[-1]
    assert last["type"] == "server_shutdown"
    assert last["message"] == "the server is shutting down; reconnect with Last-Event-ID to resume"
    assert "seq" not in last
    assert all(
        e["type"] in ("pipeline_started", "task_started", "task_completed") for e in events[:-1]
    )
    assert code == -signal.SIGTERM  # uvicorn re-raises the signal once it has shut down
    assert "Exception in ASGI application" not in output
