"""GET /runs and GET /runs/live end to end: a real uvicorn on 127.0.0.1, a real HTTP client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from otelstream.testing import iter_sse
from tests.routers import App, serve_app


@pytest.fixture
def app() -> Iterator[App]:
    yield from serve_app()


def test_the_runs_list_is_newest_first_filtered_and_paged(app: App) -> None:
    first = app.run("two_steps")
    app.wait_until_finished(first)
    failed = app.run("failing")
    app.wait_until_finished(failed)
    third = app.run("two_steps")
    app.wait_until_finished(third)

    listed = app.client.get("/runs").json()
    assert [run["run_id"] for run in listed["runs"]] == [third, failed, first]
    assert listed["next_cursor"] is None
    broken = listed["runs"][1]
    assert (broken["name"], broken["status"], broken["error_type"]) == (
        "failing",
        "error",
        "RuntimeError",
    )
    assert broken["duration_ms"] > 0 and broken["started_at"].endswith("Z")

    only = app.client.get("/runs", params={"pipeline": "two_steps", "status": "success"}).json()
    assert [run["run_id"] for run in only["runs"]] == [third, first]
    page = app.client.get("/runs", params={"limit": 2}).json()
    assert [run["run_id"] for run in page["runs"]] == [third, failed]
    rest = app.client.get("/runs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [run["run_id"] for run in rest["runs"]] == [first] and rest["next_cursor"] is None

    assert app.client.get("/runs", params={"cursor": "x"}).status_code == 422  # not a cursor
    assert app.client.get("/runs", params={"status": "lost"}).status_code == 422


def test_the_runs_stream_shows_runs_start_and_end_and_resumes(app: App) -> None:
    done = app.run("two_steps")
    app.wait_until_finished(done)
    seen: list[tuple[str, str, str]] = []
    last_id = ""
    for message in iter_sse(app.client, "GET", "/runs/live"):
        event = json.loads(message.data)
        assert message.id == str(event["seq"])
        seen.append((event["type"], event["run_id"], event["status"]))
        last_id = message.id
        if len(seen) == 2:  # the replay of the finished run: now a live one
            live = app.run("gated")
        if len(seen) == 3:
            app.gate.opened.set()
        if len(seen) == 4:
            break
    assert seen == [
        ("run_started", done, "running"),
        ("run_ended", done, "success"),
        ("run_started", live, "running"),
        ("run_ended", live, "success"),
    ]
    # a reconnecting page resumes after the last id it saw
    again = app.run("two_steps")
    app.wait_until_finished(again)
    resumed = iter_sse(app.client, "GET", "/runs/live", headers={"Last-Event-ID": last_id})
    first = json.loads(next(resumed).data)
    resumed.close()
    assert (first["type"], first["run_id"], first["seq"]) == (
        "run_started",
        again,
        int(last_id) + 1,
    )
