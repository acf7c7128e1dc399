"""The `otelstream` command as people meet it, in processes, on a pseudo-terminal and piped:
text from runs never drives the terminal, cancelled is not failed, errors are one clipped line,
a pipe gets a line per event as it happens (tests/apps/people.py is the app)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.cli.conftest import RICH_OWN, on_tty
from tests.conftest import ROOT, app_process, otelstream

PAYLOADS = {
    "csi": "\x1b[31m red \x1b[2J",
    "osc-bel": "\x1b]0;PWNED\x07 bel",
    "osc-st": "\x1b]0;PWNED\x1b\\ st",
    "c1": "\x9b31m c1 \x9d0;PWNED\x9c",
    "cr": "abc\rXYZ",
    "backspace": "abc\x08\x08\x08XYZ",
}
"""Each kind of sequence that drives a terminal, as task code or a caller could send it."""
RAW = {
    "csi": [b"\x1b[31m red", b"\x1b[2J"],
    "osc-bel": [b"\x1b]0;PWNED"],
    "osc-st": [b"\x1b]0;PWNED", b"\x1b\\"],
    "c1": [b"\xc2\x9b", b"\xc2\x9d", b"\xc2\x9c"],
    "cr": [b"abc\rXYZ"],
    "backspace": [b"\x08"],
}
SHOWN = {
    "csi": "\\x1b[31m red \\x1b[2J",
    "osc-bel": "\\x1b]0;PWNED\\x07 bel",
    "osc-st": "\\x1b]0;PWNED\\x1b\\ st",
    "c1": "\\x9b31m c1 \\x9d0;PWNED\\x9c",
    "cr": "abc\\rXYZ",
    "backspace": "abc\\x08\\x08\\x08XYZ",
}
"""What a person sees instead: each control character as its escape."""


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with app_process("tests.apps.people:app", OTELSTREAM_LOG_LEVEL="INFO") as found:
        yield found


def assert_inert(written: bytes, kind: str) -> None:
    for raw in RAW[kind]:
        assert raw not in written, (kind, raw)
    rest = RICH_OWN.sub(b"", written)
    assert b"\x1b" not in rest, rest[rest.index(b"\x1b") - 40 :][:120]
    assert b"\x07" not in rest and b"\x08" not in rest
    assert not re.search(rb"\r(?!\n)", rest), "a bare CR"
    assert not re.search("[\x80-\x9f]".encode(), rest.decode().encode("latin-1", "replace"))


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_text_from_a_run_never_drives_the_terminal(url: str, kind: str) -> None:
    """The payload is the task's name, its log line, its progress message, its error and an
    echoed parameter: on a terminal and piped, every one is shown escaped."""
    label = f"label={PAYLOADS[kind]}"
    status, written = on_tty("run", url, "hostile", "-p", label, "--full-errors")
    assert status == 1, written
    assert_inert(written, kind)
    assert SHOWN[kind].encode() in written
    piped = subprocess.run(
        [sys.executable, "-m", "otelstream", "run", url, "hostile", "-p", label],
        cwd=ROOT,
        capture_output=True,
        timeout=30,
    )
    assert piped.returncode == 1, piped.stderr
    out = piped.stdout.decode()
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]", out), repr(out)
    shown = SHOWN[kind]
    assert f"{shown}  started" in out
    assert f"{shown}  ERROR  log: {shown}" in out
    assert f"{shown}  1/2 {shown}" in out
    assert f"{shown}  failed" in out and f"RuntimeError: error: {shown}" in out


def test_errors_from_the_server_are_inert_too(url: str) -> None:
    status, written = on_tty("run", url, PAYLOADS["osc-bel"])  # an unknown pipeline: a 404
    assert status == 3
    assert_inert(written, "osc-bel")
    status, written = on_tty("run", url, "slow", "-p", f'rows="{PAYLOADS["csi"]}"')  # a 422
    assert status == 3
    assert_inert(written, "csi")


def test_a_422_is_a_field_problem_line_each(url: str) -> None:
    refused = otelstream("run", url, "slow", "-p", "seconds=500", "-p", "bogus=1")
    assert refused.returncode == 3
    assert refused.stderr.splitlines() == [
        "otelstream: the run did not start: 422 invalid request:",
        "  parameters.seconds: Input should be less than or equal to 120",
        "  parameters.bogus: Extra inputs are not permitted",
    ]


def test_a_pipe_gets_a_plain_line_per_event_as_it_happens(url: str) -> None:
    """The first line arrives while the run goes on (a CI log shows progress), no colour."""
    process = subprocess.Popen(
        [sys.executable, "-m", "otelstream", "run", url, "slow", "-p", "seconds=3"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("started run ") and first.endswith(" with seconds=3\n"), first
        run_id = first.split()[2]
        lines = [process.stdout.readline() for _ in range(3)]
        assert [line.split()[2:] for line in lines] == [
            ["slow", "started"],
            ["prepare", "started"],
            ["wait", "started"],
        ]
        assert httpx.get(f"{url}/runs/{run_id}").json()["status"] == "running"
        assert httpx.delete(f"{url}/runs/{run_id}").status_code == 202
        rest, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "\x1b" not in rest and errors == ""
    ended = [line.split()[2:4] for line in rest.splitlines()[:-1]]
    assert ended == [["wait", "cancelled"], ["prepare", "cancelled"], ["slow", "cancelled"]]
    assert re.fullmatch(rf"run {run_id} cancelled in [\d.]+ m?s", rest.splitlines()[-1])
    assert process.returncode == 4  # cancelled: its own exit status, not a failure's


def test_a_running_task_shows_its_elapsed_time_on_a_terminal(url: str) -> None:
    status, written = on_tty("run", url, "slow", "-p", "seconds=1.5")
    assert status == 0
    shown = RICH_OWN.sub(b"", written).decode()
    ages = [float(age) for age in re.findall(r"wait  running… (\d+\.\d) s", shown)]
    assert ages and max(ages) >= 0.5 and ages == sorted(ages), ages


def test_a_long_error_is_said_once_on_one_clipped_line_unless_asked_whole(url: str) -> None:
    failed = otelstream("run", url, "long_error")
    assert failed.returncode == 1
    lines = failed.stdout.splitlines()
    assert (
        len(lines) == 6
    )  # started run, the run and fetch started, fetch and the run ended, summary
    (error_line,) = [line for line in lines if "ConnectionError: " in line]  # the task's row
    assert len(error_line) == 200 and error_line.endswith("…")
    assert lines[-1].split(": ", 1)[1] == "ConnectionError in fetch"  # where, not again what
    whole = otelstream("run", url, "long_error", "--full-errors")
    long_lines = [line for line in whole.stdout.splitlines() if len(line) > 4000]
    assert len(long_lines) == 1  # whole as the server sends it (4,096 characters), once
    status, written = on_tty("run", url, "long_error", columns=80)
    assert status == 1
    screen = RICH_OWN.sub(b"", written).decode()
    assert screen.count("a very long line of detail") < 50  # an 80-column line, not 6 KB
    last = screen.rstrip().splitlines()[-1].strip()
    assert re.fullmatch(r"run [0-9a-f]{32} failed in [\d.]+ m?s: ConnectionError in fetch", last)
    assert len(last) <= 80


def test_a_run_that_logged_errors_says_so_and_succeeds(url: str) -> None:
    done = otelstream("run", url, "logs_errors")
    assert done.returncode == 0
    assert re.fullmatch(
        r"run [0-9a-f]{32} done in [\d.]+ m?s \(2 ERROR log lines\)", done.stdout.splitlines()[-1]
    )


def test_runs_shows_whole_ids_when_piped_and_with_wide(url: str) -> None:
    run_id = otelstream("run", url, "logs_errors").stdout.split()[2]
    piped = otelstream("runs", url)
    assert piped.stdout.splitlines()[0].split() == [
        "run", "name", "status", "started", "took", "error",
    ]  # fmt: skip
    (line,) = [line for line in piped.stdout.splitlines() if line.split()[0] == run_id]
    assert line.endswith("2 ERROR logs")  # succeeded, but logged errors: the list says so
    status, written = on_tty("runs", url, "--wide")
    assert status == 0 and run_id.encode() in written
    status, written = on_tty("runs", url)  # a terminal: the id whole, the error cut
    assert status == 0 and run_id.encode() in written


def test_serve_without_uvicorn_gives_a_hint_that_works_from_a_clone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from otelstream.cli import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if uvicorn were not installed
    assert main(["serve"]) == 2
    assert capsys.readouterr().out == (
        "otelstream serve needs uvicorn; from the clone: pip install '.[example]' "
        "(or: uv sync --extra example)\n"
    )


def test_the_client_takes_host_port_as_the_command_does(url: str) -> None:
    from otelstream.client import Client

    with Client(url.removeprefix("http://")) as client:
        events = list(client.run("logs_errors"))
    assert [event["type"] for event in events][-1] == "pipeline_completed"


def test_inert_escapes_every_control_and_keeps_the_text() -> None:
    from otelstream.events._inert import inert

    assert inert("a\x1b[2Jb\x9bc\rd\ne\u2028f\u202eg\x7f") == (
        "a\\x1b[2Jb\\x9bc\\rd\\ne\\u2028f\\u202eg\\x7f"
    )
    assert inert("déjà vu ✓ 日本") == "déjà vu ✓ 日本"


@pytest.mark.parametrize("hostile", ["\x1b]0;PWNED\x07x", "\x1b[2Jx", "\x9b31mx", "a\rb\bc"])
def test_a_services_name_in_a_piped_line_is_inert(hostile: str) -> None:
    """`service` comes from whatever exporter sent the span: its name never drives a terminal."""
    from otelstream.cli._lines import RunLines
    from otelstream.cli._view import RunView

    lines = RunLines(RunView("0af7651916cd43dd8448eb211c80319c"))
    root = {"type": "pipeline_started", "name": "p", "span_id": "01", "parent_span_id": None,
            "seq": 1, "timestamp": "2026-12-05T00:00:00Z"}  # fmt: skip
    task = {"type": "task_started", "name": "GET /price", "span_id": "02", "parent_span_id": "01",
            "seq": 2, "timestamp": "2026-12-05T00:00:00.5Z", "service": hostile}  # fmt: skip
    lines.line(root)
    line = lines.line(task)
    assert line is not None and "GET /price [" in line
    assert not any(ch in line for ch in "\x1b\x07\x9b\r\b"), repr(line)


def test_a_task_the_run_left_open_ends_on_the_terminal_and_in_a_pipe(url: str) -> None:
    """A task still going when its run ended (its worker died, or the run did not wait for it)
    ends in the stream with the run: piped, it gets its own line, failed, Unfinished; on a
    terminal the live tree's last frame shows it failed, not `running…`."""
    piped = otelstream("run", url, "leaves_a_task", "-p", "seconds=5")
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    (ended,) = [line for line in lines if "straggler" in line and "started" not in line]
    assert "straggler  failed" in ended and "Unfinished: the run ended before" in ended, lines
    assert lines.index(ended) < len(lines) - 2, "before the run's own end"
    assert "running" not in piped.stdout
    status, written = on_tty("run", url, "leaves_a_task", "-p", "seconds=5")
    assert status == 0, written
    shown = RICH_OWN.sub(b"", written).decode(errors="replace")
    last = shown.rsplit("leaves_a_task", 1)[-1]  # the final frame of the tree
    assert "straggler" in last and "failed" in last and "running" not in last, last
