"""The `otelstream` command against the example app, as a user runs both: in processes."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from rich.console import Console

from otelstream.cli import main
from otelstream.cli._view import RunView
from otelstream.fastapi import create_router
from otelstream.testing import UvicornServer, free_port, wait_for_run
from tests.conftest import ROOT, example_app, make_telemetry, otelstream


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    yield from example_app()


def timeless(text: str) -> str:
    """Durations vary from run to run; everything else must not."""
    return re.sub(r"\b\d+(\.\d+)? (ms|s)\b", "T", text)


def plain(text: str) -> list[str]:
    """A piped run's lines, durations and offsets as T."""
    return [line.strip() for line in timeless(text).splitlines()]


def test_run_prints_a_line_per_event_and_exits_0(url: str) -> None:
    done = otelstream("run", url, "nested", "--param", "seconds=0.01")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[2]
    assert plain(done.stdout) == [
        f"started run {run_id} with seconds=0.01",
        "+T  nested  started",
        "+T    prepare  started",  # a task two spaces in under its parent
        "+T      load  started",
        "+T      load  done  T",
        "+T      clean  started",
        "+T      clean  done  T",
        "+T    prepare  done  T",
        "+T    report  started",
        "+T    report  done  T",
        "+T  nested  done  T",
        f"run {run_id} done in T",
    ]
    assert done.stderr == ""


def test_a_failed_run_shows_its_error_once_and_exits_1(url: str) -> None:
    failed = otelstream("run", url, "failing", "-p", "seconds=0.01")
    assert failed.returncode == 1, failed.stderr
    run_id = failed.stdout.split()[2]
    assert plain(failed.stdout)[1:] == [
        "+T  failing  started",
        "+T    compute  started",
        "+T    compute  done  T",
        "+T    validate  started",
        "+T    validate  failed  T  ValueError: result 42 is out of range",
        "+T  failing  failed  T",  # the same error, shown where it was raised
        f"run {run_id} failed in T: ValueError in validate",  # once: where, not again what
    ]


def test_the_live_tree_shows_an_error_once_where_it_was_raised() -> None:
    view = RunView("r" * 32)
    root, task = "a" * 16, "b" * 16
    error = {"error": "result 42 is out of range", "error_type": "ValueError"}
    view.apply({"type": "pipeline_started", "name": "failing", "span_id": root})
    view.apply(
        {"type": "task_started", "name": "validate", "span_id": task, "parent_span_id": root}
    )
    view.apply({"type": "task_error", "span_id": task, "duration_ms": 1.0, **error})
    view.apply(
        {
            "type": "pipeline_completed",
            "span_id": root,
            "status": "error",
            "duration_ms": 2.0,
            **error,
        }
    )
    console = Console(record=True, width=100, color_system=None)
    console.print(view)
    assert timeless(console.export_text()) == (
        "failing  failed  T\n└── validate  failed  T\n    ValueError: result 42 is out of range\n"
    )


def test_tail_of_a_finished_run_replays_it(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    response = httpx.post(
        f"{url}/runs", json={"pipeline_name": "parallel", "parameters": {"width": 3, "seconds": 0}}
    )
    run_id = response.json()["run_id"]
    with httpx.Client(base_url=url) as client:
        wait_for_run(client, run_id)
    assert main(["tail", url, run_id]) == 0
    lines = plain(capsys.readouterr().out)
    assert lines[0] == "+T  parallel  started"
    shards = [f"fetch_shard_{i}" for i in range(3)]
    assert sorted(lines[1:7]) == sorted(
        [f"+T    {shard}  started" for shard in shards]
        + [f"+T    {shard}  done  T" for shard in shards]
    )
    assert lines[7:] == [
        "+T    merge  started",
        "+T    merge  done  T",
        "+T  parallel  done  T",
        f"run {run_id} done in T",
    ]


def test_server_errors_exit_3_and_usage_errors_exit_2(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", url, "nope"]) == 3
    assert capsys.readouterr().err == (
        "otelstream: the run did not start: 404 unknown pipeline 'nope'\n"
    )
    assert main(["tail", url, "0" * 32]) == 3
    assert capsys.readouterr().err.startswith(  # the server's reason, whole
        f"otelstream: unknown or expired run '{'0' * 32}': runs are kept in memory, since"
    )
    assert main(["tail", f"http://127.0.0.1:{free_port()}", "0" * 32]) == 3
    assert capsys.readouterr().err.startswith("otelstream: cannot reach the server")
    with pytest.raises(SystemExit) as usage:
        main(["run", url, "example", "--param", "seconds"])
    assert usage.value.code == 2
    assert "expected KEY=VALUE, got 'seconds'" in capsys.readouterr().err


def test_serve_runs_the_example() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "otelstream", "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/pipelines", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "otelstream serve exited"
                assert time.monotonic() < deadline, "otelstream serve did not start"
                time.sleep(0.05)
        names = [p["name"] for p in response.json()["pipelines"]]
        assert names == ["example", "failing", "parallel", "nested", "ingest"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_brackets_in_names_errors_and_hints_are_printed_as_they_are(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """rich reads `[bold]` as markup: nothing from outside, nor our own hints, may be read so."""
    telemetry = make_telemetry()
    tracer = telemetry.tracer

    def brackets() -> None:
        with tracer.start_as_current_span("task:[bold]shout[/bold]"):
            raise ValueError("[red]disk[/red] full [link=https://x]")

    app = FastAPI()
    app.include_router(
        create_router(
            hub=telemetry.hub,
            pipelines={"[b]rackets": brackets},
            tracer_provider=telemetry.provider,
        )
    )
    try:
        with UvicornServer(app) as server:
            address = server.url.removeprefix("http://")  # no scheme: http:// is meant
            assert main(["run", address, "[b]rackets"]) == 1
            out = timeless(capsys.readouterr().out)
            run_id = out.split()[2]
            error = "ValueError: [red]disk[/red] full [link=https://x]"
            assert plain(out) == [
                f"started run {run_id}",
                "+T  [b]rackets  started",
                "+T    [bold]shout[/bold]  started",
                f"+T    [bold]shout[/bold]  failed  T  {error}",
                "+T  [b]rackets  failed  T",
                f"run {run_id} failed in T: ValueError in [bold]shout[/bold]",
            ]
            assert main(["run", address, "[bold]nope"]) == 3
            assert capsys.readouterr().err == (
                "otelstream: the run did not start: 404 unknown pipeline '[bold]nope'\n"
            )
    finally:
        telemetry.provider.shutdown()
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if uvicorn were not installed
    assert main(["serve"]) == 2
    assert capsys.readouterr().out == (
        "otelstream serve needs uvicorn; from the clone: pip install '.[example]' "
        "(or: uv sync --extra example)\n"
    )


def test_connection_errors_name_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    address = f"127.0.0.1:{free_port()}"
    assert main(["run", address, "example"]) == 3
    assert capsys.readouterr().err.startswith(
        f"otelstream: cannot reach the server at http://{address}: "
    )
    assert main(["tail", address, "0" * 32]) == 3
    assert capsys.readouterr().err.startswith(
        f"otelstream: cannot reach the server at http://{address}: "
    )
