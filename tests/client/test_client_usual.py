"""What is usual, through the client (issue 31): `usual(event)` reads what a start says is
usual, `overdue(event)` a `task_overdue` / `pipeline_overdue`, both typed; against
tests/usual.py on a real uvicorn. The held task ends only once both flags were read."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from otelstream.client import (
    OVERDUE_TYPES,
    PIPELINE_OVERDUE,
    TASK_OVERDUE,
    AsyncClient,
    Client,
    Overdue,
    Usual,
    overdue,
    usual,
)
from otelstream.events import PIPELINE_OVERDUE as EVENTS_PIPELINE_OVERDUE
from otelstream.events import TASK_OVERDUE as EVENTS_TASK_OVERDUE
from otelstream.processors._overdue import threshold_ms
from tests.usual import SHARDS, UsualApp, usual_app


@pytest.fixture
def app() -> Iterator[UsualApp]:
    with usual_app() as served:
        yield served


def read(app: UsualApp, event: dict[str, Any], flags: list[Overdue]) -> None:
    """Keep each flag; let the held task end once the task and the run were both flagged."""
    if (flag := overdue(event)) is not None:
        flags.append(flag)
    if {f.type for f in flags} == OVERDUE_TYPES:
        app.release.set()


def check(events: list[dict[str, Any]], flags: list[Overdue]) -> None:
    started = {e["name"]: e for e in events if e["type"] in ("pipeline_started", "task_started")}
    assert usual(started["shards"]) == Usual(duration_ms=300.0, p90_ms=300.0)
    assert usual(started["fetch_shard_0"]) == Usual(duration_ms=300.0, p90_ms=300.0)
    assert usual(started["prepare"]) == Usual(duration_ms=5.0, p90_ms=5.0)
    ended = [e for e in events if e["type"] in ("task_completed", "pipeline_completed")]
    assert all(usual(e) is None and overdue(e) is None for e in ended)
    by_type = {f.type: f for f in flags}
    assert len(flags) == 2
    task, run = by_type[TASK_OVERDUE], by_type[PIPELINE_OVERDUE]
    assert (task.name, task.span_id, task.is_run) == (
        "fetch_shard_0",
        started["fetch_shard_0"]["span_id"],
        False,
    )
    assert (run.name, run.span_id, run.is_run) == ("shards", started["shards"]["span_id"], True)
    for flag in flags:
        assert flag.usual == Usual(300.0, 300.0)
        assert flag.running_ms is not None and flag.running_ms >= threshold_ms(300.0, 2.0, 1.0)


def test_the_sync_client_reads_what_is_usual_and_the_overdue_flags(app: UsualApp) -> None:
    app.learn("shards", SHARDS)
    events: list[dict[str, Any]] = []
    flags: list[Overdue] = []
    with Client(app.url) as client:
        for event in client.run("shards"):
            events.append(event)
            read(app, event, flags)
    check(events, flags)


def test_the_async_client_reads_them_too(app: UsualApp) -> None:
    app.learn("shards", SHARDS)
    events: list[dict[str, Any]] = []
    flags: list[Overdue] = []

    async def follow() -> None:
        async with AsyncClient(app.url) as client:
            async for event in client.run("shards"):
                events.append(event)
                read(app, event, flags)

    asyncio.run(follow())
    check(events, flags)


def test_pipelines_say_what_is_usual(app: UsualApp) -> None:
    app.learn("shards", SHARDS)
    with Client(app.url) as client:
        listed = {p["name"]: p for p in client.pipelines()}
    assert listed["shards"]["expected_duration_ms"] == pytest.approx(300.0)
    assert listed["long"]["expected_duration_ms"] is None  # no history yet


def test_the_accessors_read_only_well_formed_values() -> None:
    assert (TASK_OVERDUE, PIPELINE_OVERDUE) == (EVENTS_TASK_OVERDUE, EVENTS_PIPELINE_OVERDUE)
    assert usual({"type": "task_started"}) is None  # no history: nothing
    assert usual({"expected_duration_ms": "300"}) is None  # data, never trusted
    assert usual({"expected_duration_ms": True}) is None
    assert usual({"expected_duration_ms": -1}) is None
    assert usual({"expected_duration_ms": 300, "expected_p90_ms": "x"}) == Usual(300.0, None)
    assert overdue({"type": "task_completed", "running_ms": 5}) is None
    flag = overdue({"type": TASK_OVERDUE, "name": None, "running_ms": "soon"})
    assert flag == Overdue(TASK_OVERDUE, "", "", None, None)
