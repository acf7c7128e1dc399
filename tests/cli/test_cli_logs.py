"""Logs and progress in the terminal and the Python client, and `otelstream runs`, against the
example app in a process of its own (its `ingest` pipeline logs and reports progress)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from rich.console import Console

from otelstream.cli._lines import THINNED
from otelstream.cli._view import RunView
from otelstream.client import AsyncClient, Client
from tests.conftest import example_app, otelstream

INGEST = {"files": 3, "seconds": 0.05}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    yield from example_app()


def test_a_piped_run_prints_each_log_line_and_its_progress(url: str) -> None:
    done = otelstream("run", url, "ingest", "-p", "files=7", "-p", "seconds=0.05")
    assert done.returncode == 0, done.stderr
    lines = [
        [part.strip() for part in line.strip().split("  ") if part][1:]
        for line in done.stdout.splitlines()[1:-1]
    ]
    assert [line for line in lines if "INFO" in line] == [
        *(["read_files", "INFO", f"reading part-00{i}.csv"] for i in range(1, 8)),
        ["index", "INFO", "indexed 7 files"],
    ]
    progress = [line for line in lines if line[1].startswith(tuple(f"{i}/7" for i in range(8)))]
    # about a line a second per task, the first and the last always
    assert progress[0] == ["read_files", "1/7 part-001.csv"]
    assert progress[-1] == ["read_files", "7/7 part-007.csv"]
    thinned = [line for line in lines if THINNED in line]
    assert thinned == [["read_files", THINNED]]  # said once, where it began


def test_runs_lists_the_newest_first(url: str) -> None:
    first = otelstream("run", url, "nested", "-p", "seconds=0")
    second = otelstream("run", url, "failing", "-p", "seconds=0")
    first_id, second_id = first.stdout.split()[2], second.stdout.split()[2]
    listed = otelstream("runs", url)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    ids = [row[0] for row in rows]
    assert ids.index(second_id) < ids.index(first_id)
    assert rows[ids.index(second_id)][1:3] == ["failing", "failed"]
    assert rows[ids.index(second_id)][-1] == "ValueError"
    only = otelstream("runs", url, "--pipeline", "nested", "--limit", "1")
    assert only.stdout.splitlines()[1].split()[:3] == [first_id, "nested", "done"]


def test_the_live_view_draws_progress_and_logs_while_a_task_runs() -> None:
    view = RunView("r" * 32)
    root, task = "a" * 16, "b" * 16
    view.apply({"type": "pipeline_started", "name": "ingest", "span_id": root})
    view.apply({"type": "task_started", "name": "read", "span_id": task, "parent_span_id": root})
    view.apply({"type": "task_progress", "span_id": task, "done": 2, "total": 4, "message": "b"})
    view.apply({"type": "task_log", "span_id": task, "level": "WARN", "message": "slow disk"})
    view.apply({"type": "something_new", "span_id": task})  # ignored
    for n in range(6):
        view.apply({"type": "task_log", "span_id": task, "level": "INFO", "message": f"n{n}"})
    console = Console(record=True, width=100, color_system=None)
    console.print(view)
    text = console.export_text()
    assert "read  running…" in text
    assert "2/4 b" in text and "━" in text  # the bar, half full
    assert "… 2 earlier log lines" in text  # the newest 5 shown
    assert [line.strip() for line in text.splitlines()[-5:]] == [f"INFO  n{n}" for n in range(1, 6)]


def test_both_clients_yield_logs_and_progress_before_the_task_ends(url: str) -> None:
    def order(events: list[dict[str, object]]) -> list[str]:
        return [str(event["type"]) for event in events if event["type"] != "task_started"]

    with Client(url) as client:
        events = list(client.run("ingest", INGEST))

    async def read() -> list[dict[str, object]]:
        async with AsyncClient(url) as client:
            return [event async for event in client.run("ingest", INGEST)]

    for found in (events, asyncio.run(read())):
        kinds = order(found)
        first_done = kinds.index("task_completed")
        assert (
            kinds[:first_done].count("task_log") == 3
        )  # all of read_files' lines, before it ended
        assert kinds[first_done - 1] == "task_progress"  # the last value, just before the end
        progress = [event for event in found if event["type"] == "task_progress"]
        assert (progress[-1]["done"], progress[-1]["total"]) == (3, 3)

    with Client(url) as client:
        listed = client.runs(pipeline="ingest", limit=1)
    assert listed["runs"][0]["status"] == "success" and listed["runs"][0]["name"] == "ingest"
