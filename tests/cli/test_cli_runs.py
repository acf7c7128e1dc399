"""`otelstream runs` as people meet it: laid out to an 80-column terminal (the id, the name and
the status whole, the error in what is left), every value whole when piped, the status words it
shows taken by `--status`, and the `--cursor` its last line offers taken too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from rich.console import Console

from otelstream.cli._runs import print_runs
from otelstream.client import RunsPage
from tests.cli.conftest import on_tty, screen
from tests.conftest import example_app, otelstream

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC).timestamp()  # the rows' runs started that day


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    yield from example_app()


@pytest.fixture(scope="module")
def runs(url: str) -> dict[str, str]:
    """Three runs, oldest first: nested (done), failing (failed), nested (done)."""
    made = {}
    for key, pipeline in (("first", "nested"), ("failed", "failing"), ("last", "nested")):
        done = otelstream("run", url, pipeline, "-p", "seconds=0")
        made[key] = done.stdout.split()[2]
    return made


def test_an_80_column_terminal_shows_the_id_name_and_status_whole(
    url: str, runs: dict[str, str]
) -> None:
    status, written = on_tty("runs", url, columns=80)
    assert status == 0
    lines = [line for line in screen(written).splitlines() if line.strip()]
    assert all(len(line) <= 80 for line in lines), lines
    assert re.fullmatch(r"run {31}name {5}status  started {3}took +error", lines[0]), lines[0]
    (failed,) = [line for line in lines if line.startswith(runs["failed"])]
    assert failed.split()[1:3] == ["failing", "failed"] and failed.endswith("  ValueError")
    (done,) = [line for line in lines if line.startswith(runs["last"])]
    assert done.split()[1:3] == ["nested", "done"]
    assert re.search(r"  done    \d\d:\d\d:\d\d  ", done), done  # status: its widest word


def test_piped_every_value_is_whole(url: str, runs: dict[str, str]) -> None:
    piped = otelstream("runs", url)
    assert piped.returncode == 0, piped.stderr
    (failed,) = [line for line in piped.stdout.splitlines() if line.startswith(runs["failed"])]
    # columns are aligned: two spaces or more between values, as wide as the widest
    assert re.fullmatch(
        rf"{runs['failed']}  failing  failed  \d{{4}}-\d\d-\d\dT[\d:.]+Z"
        r"  [\d.]+ m?s {2,}ValueError",
        failed,
    ), failed


def test_status_takes_the_words_the_table_shows(url: str, runs: dict[str, str]) -> None:
    def ids(*args: str) -> list[str]:
        listed = otelstream("runs", url, *args)
        assert listed.returncode == 0, listed.stderr
        return [line.split()[0] for line in listed.stdout.splitlines()[1:]]

    assert runs["failed"] in ids("--status", "failed")
    assert ids("--status", "failed") == ids("--status", "error")
    assert runs["last"] in ids("--status", "done") and runs["failed"] not in ids("--status", "done")
    assert ids("--status", "done") == ids("--status", "success")
    bad = otelstream("runs", url, "--status", "ok")
    assert bad.returncode == 2
    assert "'ok' is not a status: running, done, failed or cancelled" in bad.stderr


def test_the_cursor_it_offers_is_taken(url: str, runs: dict[str, str]) -> None:
    seen: list[str] = []
    args = ["--pipeline", "nested", "--limit", "1"]
    while True:
        page = otelstream("runs", url, *args).stdout.splitlines()
        seen.append(page[1].split()[0])
        if not page[-1].startswith("more: "):
            break
        flag, cursor = page[-1].removeprefix("more: ").split()
        assert flag == "--cursor"
        args = ["--pipeline", "nested", "--limit", "1", "--cursor", cursor]
    assert seen.index(runs["last"]) < seen.index(runs["first"])  # newest first, page by page
    assert len(seen) == len(set(seen))


def page(*runs: dict[str, object], cursor: str | None = None) -> RunsPage:
    return RunsPage(list(runs), cursor)


def run(name: str, status: str, error: str | None = None, **more: object) -> dict[str, object]:
    return {"run_id": "0af7651916cd43dd8448eb211c80319c", "name": name, "status": status,
            "started_at": "2026-11-29T08:13:20Z", "duration_ms": 12.5, "error_type": error,
            **more}  # fmt: skip


def lines_at(width: int, listed: RunsPage) -> list[str]:
    console = Console(record=True, width=width, color_system=None)
    print_runs(listed, console, wide=False, now=NOW)
    return console.export_text().splitlines()


def test_a_long_name_and_error_share_what_is_left_the_error_the_rest() -> None:
    listed = page(
        run("nightly_reconciliation_of_accounts", "error", "UpstreamTimeoutError",
            errors_logged=3),
        run("nested", "success"),
        cursor="41",
    )  # fmt: skip
    lines = lines_at(80, listed)
    assert all(len(line) <= 80 for line in lines)
    header, long, short, more = lines
    assert header.split() == ["run", "name", "status", "started", "took", "error"]
    assert long.split()[1:4] == ["nightly_rec…", "failed", "08:13:20"]
    assert long.endswith("  Upstre…") and len(long) == 80  # the error takes the rest, cut
    assert short.split()[1:3] == ["nested", "done"]
    assert more == "more: --cursor 41"
    wide = lines_at(200, listed)[1]
    assert "nightly_reconciliation_of_accounts" in wide
    assert wide.endswith("UpstreamTimeoutError, 3 ERROR logs")


def test_the_columns_are_as_wide_as_their_widest_value() -> None:
    lines = lines_at(80, page(run("a", "success"), run("b", "cancelled")))
    assert lines[0].startswith("run" + " " * 31 + "name  status     started")  # cancelled: 9
    lines = lines_at(80, page(run("a", "success")))
    assert lines[0].startswith("run" + " " * 31 + "name  status  started")  # done: the header's 6
    assert lines[1].split()[1:] == ["a", "done", "08:13:20", "12", "ms"]
    other_day = lines_at(80, page(run("a", "success", started_at="2026-11-20T08:13:20Z")))
    assert other_day[1].split()[3:5] == ["11-20", "08:13"]
