"""What is usual, in the terminal (issue 31): the live view's header says how long such runs
take and about how long is left (then "slower than usual"), a task's line says it is overdue
while it runs; a pipe gets a line when the server flags a task or the run. Against
tests/usual.py on a real uvicorn, the command in a process of its own; the held task ends only
once what the test waits for was written, so no assert depends on how fast anything is."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from rich.console import Console

from otelstream.cli._lines import RunLines
from otelstream.cli._view import RunView
from tests.cli.conftest import RICH_OWN, on_tty, screen
from tests.conftest import ROOT
from tests.usual import LONG, SHARDS, UsualApp, usual_app


@pytest.fixture
def app() -> Iterator[UsualApp]:
    with usual_app() as served:
        yield served


def release_when(app: UsualApp, *shown: str) -> object:
    """An `on_output` that lets the held task end once the screen shows each of `shown`."""

    def look(written: bytes) -> None:
        if not app.release.is_set() and all(text in screen(written) for text in shown):
            app.release.set()

    return look


def pieces(written: bytes) -> list[str]:
    """What rich wrote between its own sequences and line ends: each is on one line of the
    screen, so none may be wider than the terminal."""
    return [p for p in re.split(rb"\r?\n|" + RICH_OWN.pattern, written) if p and p != b"\r"]


def test_the_live_header_says_the_usual_time_and_what_is_left(app: UsualApp) -> None:
    app.learn("long", LONG)
    status, written = on_tty(
        "run", app.url, "long", columns=80, on_output=release_when(app, "s left")
    )
    assert status == 0
    shown = screen(written)
    notes = re.findall(r"long  running… \d+\.\d s  usually 20\.0 s · about (\d+\.\d) s left", shown)
    assert notes, shown
    assert "load  running… " in shown and "overdue" not in shown
    assert re.search(r"long  done  [\d.]+ m?s  usually 20\.0 s\n", shown), shown  # ended
    assert max(len(piece.decode()) for piece in pieces(written)) <= 80  # within the width


def test_the_live_view_marks_an_overdue_task_and_the_run_slower_than_usual(
    app: UsualApp,
) -> None:
    app.learn("shards", SHARDS)
    flagged = "fetch_shard_0  running… "
    status, written = on_tty(
        "run",
        app.url,
        "shards",
        columns=100,
        on_output=release_when(app, "overdue, usually 0.3 s", "slower than usual"),
    )
    assert status == 0
    shown = screen(written)
    assert re.search(rf"{flagged}\d+\.\d s  overdue, usually 0\.3 s", shown), shown
    assert re.search(r"shards  running… \d+\.\d s  usually 0\.3 s · slower than usual", shown)
    # ended, it no longer looks running: done, and that it was overdue
    assert re.search(r"fetch_shard_0  done  [\d.]+ s  was overdue, usually 0\.3 s", shown), shown
    assert re.search(r"shards  done  [\d.]+ s  usually 0\.3 s · was slower than usual", shown)


def test_a_narrow_terminal_cuts_the_header_and_never_wraps_it(app: UsualApp) -> None:
    app.learn("shards", SHARDS)
    status, written = on_tty(
        "run", app.url, "shards", columns=50, on_output=release_when(app, "overdue")
    )
    assert status == 0
    assert max(len(piece.decode()) for piece in pieces(written)) <= 50
    shown = screen(written)
    # what did not fit was cut at the width, with an ellipsis: never wrapped to a second line
    assert re.search(r"shards  running… \d+\.\d s  usually 0\.3 s · slower[^\n]*…", shown), shown
    assert re.search(r"fetch_shard_0  running… \d+\.\d s  overdue, usu[^\n]*…", shown), shown


def test_a_pipe_gets_a_line_when_a_task_is_overdue_and_when_the_run_is(app: UsualApp) -> None:
    app.learn("shards", SHARDS)
    process = subprocess.Popen(
        [sys.executable, "-m", "otelstream", "run", app.url, "shards"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not app.release.is_set():  # the task is held until both lines are written
            line = process.stdout.readline()
            assert line, "the command ended before the task was flagged"
            lines.append(line.rstrip("\n"))
            words = [" ".join(part.split()) for part in lines]
            if any("overdue:" in w for w in words) and any(
                "slower than usual:" in w for w in words
            ):
                app.release.set()
        rest, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0 and errors == ""
    lines += rest.splitlines()
    parts = [[p.strip() for p in line.split("  ") if p.strip()][1:] for line in lines[1:-1]]
    assert parts[0] == ["shards", "started", "usually 0.3 s"]
    overdue = [p for p in parts if len(p) > 1 and p[1].startswith("overdue:")]
    assert len(overdue) == 1
    assert re.fullmatch(r"overdue: \d+\.\d s, usually 0\.3 s", overdue[0][1]), overdue
    assert overdue[0][0] == "fetch_shard_0"
    slower = [p for p in parts if len(p) > 1 and p[1].startswith("slower than usual:")]
    assert len(slower) == 1 and slower[0][0] == "shards"
    assert re.fullmatch(r"slower than usual: \d+\.\d s, usually 0\.3 s", slower[0][1])
    names = [p[:2] for p in parts]
    assert names.index(["fetch_shard_0", overdue[0][1]]) < names.index(["fetch_shard_0", "done"])
    assert "\x1b" not in "\n".join(lines)


def test_the_view_reads_what_is_usual_from_events_and_ignores_what_it_cannot() -> None:
    clock = [1000.0]
    view = RunView("r" * 32, clock=lambda: clock[0])
    root, task, other = "a" * 16, "b" * 16, "c" * 16
    at = "1970-01-01T00:16:40Z"  # 1000.0 s
    view.apply(
        {"type": "pipeline_started", "name": "p", "span_id": root, "timestamp": at,
         "expected_duration_ms": 2000.0, "expected_p90_ms": 3000.0}
    )  # fmt: skip
    view.apply(
        {"type": "task_started", "name": "t", "span_id": task, "parent_span_id": root,
         "timestamp": at, "expected_duration_ms": 2500.0, "expected_p90_ms": "soon"}
    )  # fmt: skip
    view.apply({"type": "task_overdue", "span_id": "f" * 16, "running_ms": 1})  # unknown: ignored
    view.apply({"type": "task_started", "name": "u", "span_id": other, "parent_span_id": root,
                "timestamp": at, "expected_duration_ms": "<script>"})  # fmt: skip

    def drawn() -> str:
        console = Console(record=True, width=100, color_system=None)
        console.print(view)
        return console.export_text()

    clock[0] = 1000.5  # the task's usual end is further than the run's: it says what is left
    assert "usually 2.0 s · about 2.0 s left" in drawn()
    clock[0] = 1002.6  # past both usual times, not past the p90
    assert "usually 2.0 s · any moment now" in drawn()
    clock[0] = 1003.1  # past the p90
    assert "usually 2.0 s · slower than usual" in drawn()
    lines = RunLines(view)
    flag = {"type": "task_overdue", "name": "t", "span_id": task, "timestamp": at,
            "running_ms": 5100.0, "expected_duration_ms": 2500.0}  # fmt: skip
    assert (lines.line(flag) or "").split("  ")[-1] == "overdue: 5.1 s, usually 2.5 s"
    assert "t  running… 3.1 s  overdue, usually 2.5 s" in drawn()
    assert "usually" not in drawn().splitlines()[-1]  # `u`: its usual time was no number


def test_an_overdue_tasks_name_stays_inert_in_the_piped_line_and_the_live_view() -> None:
    """A task name with an escape sequence, a carriage return and a newline: the overdue line
    and the live view show it as text, never as terminal control."""
    view = RunView("r" * 32, clock=lambda: 1003.0)
    root, task = "a" * 16, "b" * 16
    at = "1970-01-01T00:16:40Z"
    hostile = "t\x1b[2J\rgone\nnext"
    view.apply({"type": "pipeline_started", "name": "p", "span_id": root, "timestamp": at})
    view.apply(
        {"type": "task_started", "name": hostile, "span_id": task, "parent_span_id": root,
         "timestamp": at, "expected_duration_ms": 300.0, "expected_p90_ms": 300.0}
    )  # fmt: skip
    flag = {"type": "task_overdue", "name": hostile, "span_id": task, "timestamp": at,
            "running_ms": 1300.0, "expected_duration_ms": 300.0}  # fmt: skip
    line = RunLines(view).line(flag) or ""
    assert line.endswith("overdue: 1.3 s, usually 0.3 s")
    console = Console(record=True, width=120, color_system=None)
    console.print(view)
    drawn = console.export_text()
    for text in (line, drawn):
        assert "\x1b" not in text and "\r" not in text
    assert "\n" not in line
