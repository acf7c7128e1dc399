"""The example app as a user runs it: `uvicorn examples.fastapi-telemetry.main:app` in a process."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from otelstream.events._wire import OUTCOME_LOGGER
from otelstream.testing import iter_sse, read_events
from tests.conftest import EXAMPLE_SHAPE, NESTED_SHAPE, app_process, shape

EXAMPLE = "examples.fastapi-telemetry.main:app"


@pytest.fixture(scope="module")
def example() -> Iterator[httpx.Client]:
    with app_process(EXAMPLE) as url, httpx.Client(base_url=url, timeout=20) as client:
        yield client


def run(client: httpx.Client, pipeline: str, **parameters: Any) -> list[dict[str, Any]]:
    body = {"pipeline_name": pipeline, "parameters": parameters}
    return read_events(client, "POST", "/run-workflow", json=body)


def check_ids(events: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["run_id"] for e in events}) == 1
    assert len(events[0]["run_id"]) == 32


def test_example_pipeline(example: httpx.Client) -> None:
    events = run(example, "example", seconds=0.05)
    assert shape(events) == EXAMPLE_SHAPE
    check_ids(events)
    assert events[-1]["status"] == "success"
    assert events[2]["duration_ms"] >= 50
    root = events[0]["span_id"]
    assert [e["parent_span_id"] for e in events] == [None, root, root, root, root, None]


def test_failing_pipeline_fails_in_its_second_task(example: httpx.Client) -> None:
    events = run(example, "failing", seconds=0.01)
    assert shape(events) == [
        ("pipeline_started", "failing"),
        ("task_started", "compute"),
        ("task_completed", "compute"),
        ("task_started", "validate"),
        ("task_error", "validate"),
        ("task_log", OUTCOME_LOGGER),  # the runner's "run … failed", inside the root span
        ("pipeline_completed", "failing"),
    ]
    check_ids(events)
    assert (events[4]["error"], events[4]["error_type"]) == (
        "result 42 is out of range",
        "ValueError",
    )
    assert events[5]["level"] == "WARN" and "failed: ValueError: result 42" in events[5]["message"]
    assert events[6]["status"] == "error"
    assert events[6]["error_type"] == "ValueError"


@pytest.mark.parametrize(
    ("pipeline", "parameters", "kind"),
    [
        ("example", '{"seconds": NaN}', "finite_number"),
        ("example", '{"seconds": Infinity}', "finite_number"),
        ("failing", '{"seconds": -1}', "greater_than_equal"),
        ("nested", '{"seconds": 1e6}', "less_than_equal"),
        ("parallel", '{"width": 500}', "less_than_equal"),
        ("parallel", '{"width": 0}', "greater_than_equal"),
    ],
)
def test_parameters_anyone_can_send_are_bounded(
    example: httpx.Client, pipeline: str, parameters: str, kind: str
) -> None:
    """The example is what people copy: no NaN, negative or endless sleeps, no 500 threads."""
    body = f'{{"pipeline_name": "{pipeline}", "parameters": {parameters}}}'
    response = example.post("/runs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert (error["type"], error["loc"][-2]) == (kind, "parameters")


def test_a_long_wait_stops_as_soon_as_its_run_is_cancelled(example: httpx.Client) -> None:
    """compute sleeps 60 s without opening a span: `check_cancelled()` stops it."""
    run_id = example.post(
        "/runs", json={"pipeline_name": "example", "parameters": {"seconds": 60}}
    ).json()["run_id"]
    with httpx.Client(base_url=example.base_url, timeout=5) as reader:
        events = iter(read_events_live(reader, run_id))
        assert shape([next(events), next(events)]) == EXAMPLE_SHAPE[:2]  # compute is sleeping
        assert example.delete(f"/runs/{run_id}").status_code == 202
        rest = list(events)  # a 5 s read timeout: the run must end well before compute would
    assert shape(rest) == [
        ("task_error", "compute"),
        ("task_log", OUTCOME_LOGGER),  # the runner's "run … was cancelled"
        ("pipeline_completed", "example"),
    ]
    assert (rest[-1]["status"], rest[-1]["error_type"]) == ("cancelled", "RunCancelled")
    assert rest[0]["duration_ms"] < 5000


def read_events_live(client: httpx.Client, run_id: str) -> Iterator[dict[str, Any]]:
    for message in iter_sse(client, "GET", f"/runs/{run_id}/events"):
        yield json.loads(message.data)


def test_parallel_pipeline_runs_its_shards_in_threads(example: httpx.Client) -> None:
    events = run(example, "parallel", width=4, seconds=0.2)
    check_ids(events)
    shards = {f"fetch_shard_{i}" for i in range(4)}
    started = [e["name"] for e in events if e["type"] == "task_started"]
    assert set(started[:4]) == shards and started[4] == "merge"
    first_shard_end = min(i for i, e in enumerate(events) if e["type"] == "task_completed")
    assert first_shard_end == 5, "all four shards started before the first one ended"
    assert Counter(e["type"] for e in events) == {
        "pipeline_started": 1,
        "task_started": 5,
        "task_completed": 5,
        "pipeline_completed": 1,
    }
    root = events[0]["span_id"]
    assert {e["parent_span_id"] for e in events[1:-1]} == {root}


def test_nested_pipeline_keeps_its_tree(example: httpx.Client) -> None:
    events = run(example, "nested", seconds=0.01)
    check_ids(events)
    assert shape(events) == NESTED_SHAPE
    ids = {(e["name"]): e["span_id"] for e in events if e["type"] == "task_started"}
    parents = {e["name"]: e["parent_span_id"] for e in events if e["type"] == "task_started"}
    assert parents["load"] == parents["clean"] == ids["prepare"]
    assert parents["prepare"] == parents["report"] == events[0]["span_id"]


def test_the_run_can_be_read_back(example: httpx.Client) -> None:
    events = run(example, "nested", seconds=0.01)
    run_id = events[0]["run_id"]
    assert [e["seq"] for e in read_events(example, "GET", f"/runs/{run_id}/events")] == list(
        range(1, 11)
    )
    tree = example.get(f"/runs/{run_id}").json()["tree"]
    assert [c["name"] for c in tree["children"]] == ["prepare", "report"]
    assert [c["name"] for c in tree["children"][0]["children"]] == ["load", "clean"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_curl_command(example: httpx.Client) -> None:
    result = subprocess.run(
        ["curl", "-N", "-sS", "-X", "POST", f"{example.base_url}".rstrip("/") + "/run-workflow",
         "-H", "Content-Type: application/json", "-d", '{"pipeline_name": "example"}'],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith("data: ")]
    events = [json.loads(line[len("data: ") :]) for line in lines]
    assert shape(events) == EXAMPLE_SHAPE
    assert events[-1]["status"] == "success"


@pytest.mark.parametrize(
    ("telemetry", "framework_spans"),
    [
        ("builtin", {"POST /run-workflow", "fastapi.endpoint"}),
        ("contrib", {"POST /run-workflow", "POST /run-workflow http send"}),
    ],
)
def test_framework_spans_never_become_events(telemetry: str, framework_spans: set[str]) -> None:
    env = {"FRAMEWORK_TELEMETRY": telemetry, "OTELSTREAM_KEEPALIVE_SECONDS": "0.02"}
    with app_process("tests.apps.framework_spans:app", **env) as url:
        with httpx.Client(base_url=url, timeout=20) as client:
            # keep-alive comments while compute sleeps: each is a chunk sent, and so a span
            events = run(client, "example", seconds=0.3)
            spans = Counter(client.get("/test/spans").json())
    assert framework_spans <= set(spans), f"the {telemetry} telemetry made no spans: {spans}"
    assert len(events) == 6
    assert {e["name"] for e in events} == {"example", "compute", "finalize"}
    if telemetry == "contrib":
        assert spans["POST /run-workflow http send"] > 6, "keep-alives were sent, as chunks"
