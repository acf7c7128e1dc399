"""A pipeline's history over HTTP (issue 31.5): `GET /pipelines` tells each one's usual
duration, p90, success rate and last status; `GET /pipelines/{name}/history` its last runs
and its tasks' usual durations. On a real uvicorn, learnt from real runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.routers import App, serve_app
from tests.usual import learn


@pytest.fixture
def app() -> Iterator[App]:
    yield from serve_app()


def history_with(app: App, name: str, runs: int) -> dict[str, Any]:
    """The history once the hub has learnt `runs` runs (it learns off the span thread)."""
    deadline = time.monotonic() + 10
    while True:
        response = app.client.get(f"/pipelines/{name}/history")
        assert response.status_code == 200, response.text
        history: dict[str, Any] = response.json()
        if len(history["runs"]) >= runs:
            return history
        assert time.monotonic() < deadline, f"the hub learnt {history['runs']}"
        time.sleep(0.02)


def test_a_pipeline_that_has_not_run_has_an_empty_history_and_no_usual_duration(
    app: App,
) -> None:
    history = history_with(app, "two_steps", 0)
    assert history["runs"] == [] and history["tasks"] == {} and history["success_rate"] is None
    listed = app.client.get("/pipelines").json()["pipelines"][0]
    assert listed["name"] == "two_steps" and listed["expected_duration_ms"] is None


def test_the_history_of_runs_is_served_and_the_pipelines_list_tells_what_is_usual(
    app: App,
) -> None:
    ran = []
    for _ in range(3):  # one after the other: the history lists runs in the order they ended
        ran.append(app.run("two_steps"))
        app.wait_until_finished(ran[-1])
    failed = app.run("failing")
    app.wait_until_finished(failed)

    history = history_with(app, "two_steps", 3)
    assert [run["run_id"] for run in history["runs"]] == ran[::-1]
    assert {run["status"] for run in history["runs"]} == {"success"}
    assert all(run["duration_ms"] >= 0 and run["started_at"] for run in history["runs"])
    assert len(history["durations_ms"]) == 3
    assert history["expected_duration_ms"] <= history["expected_p90_ms"]
    assert sorted(history["tasks"]) == sorted(
        p for p in history["tasks"] if "extract" in p or "load" in p
    )
    assert len(history["tasks"]) == 2
    for task in history["tasks"].values():
        assert len(task["durations_ms"]) == 3 and "expected_duration_ms" in task

    failing = history_with(app, "failing", 1)
    assert failing["runs"][0]["status"] == "error" and failing["durations_ms"] == []

    listed = {p["name"]: p for p in app.client.get("/pipelines").json()["pipelines"]}
    assert listed["two_steps"]["expected_duration_ms"] == history["expected_duration_ms"]
    assert listed["two_steps"]["expected_p90_ms"] == history["expected_p90_ms"]
    assert listed["two_steps"]["success_rate"] == 1.0
    assert listed["two_steps"]["last_status"] == "success"
    assert listed["failing"]["success_rate"] == 0.0 and listed["failing"]["last_status"] == "error"
    assert listed["failing"]["expected_duration_ms"] is None
    assert listed["gated"]["last_status"] is None


def test_an_unknown_pipelines_history_is_404(app: App) -> None:
    assert app.client.get("/pipelines/nope/history").status_code == 404


def test_the_history_route_is_in_the_openapi_document(app: App) -> None:
    document = app.client.get("/openapi.json").json()
    route = document["paths"]["/pipelines/{name}/history"]["get"]
    assert set(route["responses"]) >= {"200", "404", "503"}
    assert "PipelineHistory" in document["components"]["schemas"]


def test_a_hub_slower_than_the_wait_leaves_the_list_without_usual_times_and_says_so(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The list is the process's own: a hub that takes longer than `HISTORY_WAIT_S` to tell the
    histories (a stand-in here: the memory hub is never slow) costs it a second, not its answer,
    and the warning says what happened."""
    from otelstream._server.api import HISTORY_WAIT_S

    learn(app.hub, "two_steps", 300.0, {})
    assert app.client.get("/pipelines").json()["pipelines"][0]["expected_duration_ms"] == 300

    async def slow(pipeline: str) -> dict[str, Any]:
        await asyncio.sleep(HISTORY_WAIT_S + 5)
        raise AssertionError("the list waited for it")

    monkeypatch.setattr(app.hub, "history", slow)
    began = time.monotonic()
    response = app.client.get("/pipelines")
    assert response.status_code == 200, response.text
    assert time.monotonic() - began < HISTORY_WAIT_S + 2
    listed = response.json()["pipelines"]
    assert listed[0]["name"] == "two_steps" and listed[0]["expected_duration_ms"] is None
    told = [r.getMessage() for r in caplog.records if "histories within" in r.getMessage()]
    assert len(told) == 1 and "answered without their usual times" in told[0], told
