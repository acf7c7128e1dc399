"""The `otelstream` command: start or follow a run and draw its live tree, list runs, serve an app.

A task's progress shows as a bar beside it and its newest log lines under it. On a terminal the
tree is redrawn live; into a pipe or a file (a CI log) each event is one plain line as it
happens, without colour.

Needs the `client` extra (httpx, httpx-sse, rich); `serve` needs uvicorn.
Exit status: 0 the run succeeded, 1 it failed, 2 bad usage, 3 the server refused or could not
be reached, 4 the run was cancelled.

Everything printed that comes from outside (task names, errors, log lines, parameters, the
server's answers) goes through `inert`, so no byte of it can drive the terminal, and is printed
as rich `Text` on consoles with markup off, so nothing is read as rich markup either.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from otelstream.cli._format import (
    STATUS_STYLE,
    STATUS_TEXT,
    format_elapsed,
    format_ms,
    parse_time,
)
from otelstream.cli._lines import RunLines
from otelstream.cli._view import RunView
from otelstream.client import Client, ClientError
from otelstream.client._base import base_url
from otelstream.events._inert import inert

EXAMPLE_APP = "examples.fastapi-telemetry.main:app"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_CANCELLED = 0, 1, 2, 3, 4
EXIT_CODES = (
    "exit status: 0 the run succeeded, 1 it failed, 2 bad usage, "
    "3 the server refused or could not be reached, 4 the run was cancelled"
)
INSTALL_HINT = "from the clone: pip install '.[{extra}]' (or: uv sync --extra {extra})"
"""otelstream is installed from a clone (it is on no package index): a hint says how."""


def follow(client: Client, run_id: str, console: Console, full_errors: bool = False) -> int:
    """Draw the run until it ends (live on a terminal, a line per event otherwise); the exit
    status says how it ended."""
    view = RunView(run_id, full_errors=full_errors)
    if console.is_terminal:
        with Live(view, console=console, refresh_per_second=8):
            for event in client.events(run_id):
                view.apply(event)
    else:  # a pipe or a file: a plain line per event, as it comes
        lines = RunLines(view, clip=None if full_errors else 200)
        for event in client.events(run_id):
            line = lines.line(event)
            if line is not None:
                console.print(Text(line), soft_wrap=True)
    console.print(Text(view.summary(None if full_errors else 200)), soft_wrap=True)
    try:
        trace_url = client.get_run(run_id).get("trace_url")
    except (ClientError, httpx.HTTPError):
        trace_url = None
    if trace_url:
        console.print(Text(f"trace: {inert(trace_url)}"), soft_wrap=True)
    if view.status == "success":
        return EXIT_OK
    return EXIT_CANCELLED if view.status == "cancelled" else EXIT_FAILED


def parse_param(text: str) -> tuple[str, Any]:
    """`k=v`: v is JSON when it parses (`seconds=0.5`, `tags=["a"]`), a string otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _run(args: argparse.Namespace, console: Console) -> int:
    with Client(args.url) as client:
        parameters = dict(args.param)
        started = client.start(args.pipeline, parameters)
        given = ", ".join(f"{key}={json.dumps(value)}" for key, value in parameters.items())
        line = f"started run {started.run_id}" + (f" with {inert(given)}" if given else "")
        console.print(Text(line, style="dim"), soft_wrap=True)
        return follow(client, started.run_id, console, args.full_errors)


def _tail(args: argparse.Namespace, console: Console) -> int:
    with Client(args.url) as client:
        return follow(client, args.run_id, console, args.full_errors)


_RUN_COLUMNS = ("run", "name", "status", "started", "took", "error")
_MIN_WIDTHS = {"run": 32, "status": 9, "started": 14, "took": 8}
"""On a terminal, columns cut last: the whole id, the status, when, how long."""


def _runs(args: argparse.Namespace, console: Console) -> int:
    with Client(args.url) as client:
        page = client.runs(pipeline=args.pipeline, status=args.status, limit=args.limit)
    now = time.time()
    rows = [_run_row(run, now) for run in page]
    if not rows:
        console.print(Text("no runs", style="dim"))
    elif console.is_terminal and not args.wide:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in _RUN_COLUMNS:  # the id whole (to paste into `tail`), the error cut
            width = _MIN_WIDTHS.get(column)
            table.add_column(column, no_wrap=True, overflow="ellipsis", min_width=width)
        for row, run in zip(rows, page, strict=True):
            status = run.get("status")
            row[3] = row[3][5:19].replace("T", " ")  # 12-04 16:45:57: the year and µs go
            cells = [Text(cell) for cell in row]
            cells[2].stylize(STATUS_STYLE.get(str(status), ""))
            cells[5].stylize("red")
            table.add_row(*cells)
        console.print(table)
    else:  # piped, or --wide: every value whole, in aligned columns
        widths = [max(len(row[i]) for row in [list(_RUN_COLUMNS), *rows]) for i in range(6)]
        for row in [list(_RUN_COLUMNS), *rows]:
            line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            console.print(Text(line.rstrip()), soft_wrap=True)
    if page.next_cursor:
        console.print(Text(f"more: --cursor {inert(page.next_cursor)}", style="dim"))
    return EXIT_OK


def _run_row(run: dict[str, Any], now: float) -> list[str]:
    """A run's cells as text: a running run's age for its duration, every value inert."""
    status = str(run.get("status"))
    took = format_ms(run.get("duration_ms"))
    started = parse_time(run.get("started_at"))
    if status == "running" and started is not None:
        took = format_elapsed(now - started)
    return [
        inert(run.get("run_id", "")),
        inert(run.get("name", "")),
        STATUS_TEXT.get(status, inert(status)),
        inert(run.get("started_at", "")),
        took,
        _problems(run, status),
    ]


def _problems(run: dict[str, Any], status: str) -> str:
    """The error column: the run's error type, and how many ERROR log records it had."""
    failed = "" if status == "cancelled" else inert(run.get("error_type") or "")
    logged = run.get("errors_logged")
    if not isinstance(logged, int) or logged <= 0:
        return failed
    count = f"{logged} ERROR log{'s' if logged > 1 else ''}"
    return f"{failed}, {count}" if failed else count


def _serve(args: argparse.Namespace, console: Console) -> int:
    try:
        import uvicorn
    except ImportError:
        hint = INSTALL_HINT.format(extra="example")
        console.print(Text(f"otelstream serve needs uvicorn; {hint}"), soft_wrap=True)
        return EXIT_USAGE
    sys.path.insert(0, os.path.abspath(args.app_dir))  # as `uvicorn --app-dir` does
    uvicorn.run(args.app, host=args.host, port=args.port, reload=args.reload)
    return EXIT_OK


FULL_ERRORS = "show errors and log lines whole (by default: one line each, cut)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otelstream",
        description="Follow otelstream runs in the terminal, or serve an app.",
        epilog=EXIT_CODES,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start a pipeline and draw its live tree")
    run.add_argument(
        "url", type=base_url, help="where the otelstream router is served, e.g. 127.0.0.1:8000"
    )
    run.add_argument("pipeline")
    run.add_argument(
        "-p", "--param", type=parse_param, action="append", default=[], metavar="KEY=VALUE",
        help="a parameter of the pipeline (VALUE is JSON when it parses); repeatable",
    )  # fmt: skip
    run.add_argument("--full-errors", action="store_true", help=FULL_ERRORS)
    run.set_defaults(handler=_run)
    tail = commands.add_parser("tail", help="draw the live tree of a run that was started")
    tail.add_argument("url", type=base_url)
    tail.add_argument("run_id")
    tail.add_argument("--full-errors", action="store_true", help=FULL_ERRORS)
    tail.set_defaults(handler=_tail)
    runs = commands.add_parser("runs", help="list recent and running runs, newest first")
    runs.add_argument("url", type=base_url)
    runs.add_argument("--pipeline", help="only runs of this pipeline")
    runs.add_argument("--status", choices=["running", "success", "error", "cancelled"])
    runs.add_argument("--limit", type=int, default=50)
    runs.add_argument("--wide", action="store_true", help="cut no column, whatever the width")
    runs.set_defaults(handler=_runs)
    serve = commands.add_parser("serve", help="run an ASGI app with uvicorn (default: the example)")
    serve.add_argument("app", nargs="?", default=EXAMPLE_APP, help=f"module:app ({EXAMPLE_APP})")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--reload", action="store_true")
    serve.add_argument("--app-dir", default=".", help="added to sys.path first (default: .)")
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(highlight=False, markup=False)
    try:
        code: int = args.handler(args, console)
        return code
    except (ClientError, httpx.HTTPError) as exc:
        message = f"otelstream: {exc}"
        if isinstance(exc, httpx.TransportError):
            message = f"otelstream: cannot reach the server at {args.url}: {exc}"
        errors = Console(stderr=True, highlight=False, markup=False)
        for line in message.splitlines():  # a 422: a "field: problem" line per error
            errors.print(Text(inert(line), style="red"), soft_wrap=True)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main"]
