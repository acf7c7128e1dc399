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
from collections.abc import Sequence
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.text import Text

from otelstream.cli._lines import RunLines
from otelstream.cli._runs import list_runs, status_word
from otelstream.cli._view import RunView
from otelstream.client import Client, ClientError, Retrying
from otelstream.client._base import base_url
from otelstream.events._inert import inert

EXAMPLE_APP = "examples.fastapi-telemetry.main:app"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_CANCELLED = 0, 1, 2, 3, 4
EXIT_CODES = (
    "exit status: 0 the run succeeded, 1 it failed, 2 bad usage, "
    "3 the server refused or could not be reached, 4 the run was cancelled"
)
PIPED_WIDTH = 200
"""Piped, a line is cut at this many characters (on a terminal: at its width)."""
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
        lines = RunLines(view, clip=None if full_errors else PIPED_WIDTH)
        for event in client.events(run_id):
            line = lines.line(event)
            if line is not None:
                console.print(Text(line), soft_wrap=True)
    clip = None if full_errors else console.width if console.is_terminal else PIPED_WIDTH
    console.print(Text(view.summary(clip)), soft_wrap=True)
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


def _client(args: argparse.Namespace) -> Client:
    """A client that says on stderr each time it waits to ask again (a 503 while the
    server's hub is down, a dropped stream), rather than waiting in silence."""
    errors = Console(stderr=True, highlight=False, markup=False)

    def say(notice: Retrying) -> None:
        errors.print(Text(inert(f"otelstream: {notice}"), style="yellow"), soft_wrap=True)

    return Client(args.url, on_retry=say)


def _run(args: argparse.Namespace, console: Console) -> int:
    with _client(args) as client:
        parameters = dict(args.param)
        started = client.start(args.pipeline, parameters)
        given = ", ".join(f"{key}={json.dumps(value)}" for key, value in parameters.items())
        line = f"started run {started.run_id}" + (f" with {inert(given)}" if given else "")
        console.print(Text(line, style="dim"), soft_wrap=True)
        return follow(client, started.run_id, console, args.full_errors)


def _tail(args: argparse.Namespace, console: Console) -> int:
    with _client(args) as client:
        return follow(client, args.run_id, console, args.full_errors)


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
    runs.add_argument(
        "--status", type=status_word, metavar="{running,done,failed,cancelled}",
        help="only runs in this state (success and error are taken too)",
    )  # fmt: skip
    runs.add_argument("--limit", type=int, default=50, help="runs a page (default: 50)")
    runs.add_argument("--cursor", help="the next, older page: as the last line said (more: …)")
    runs.add_argument("--wide", action="store_true", help="cut no column, whatever the width")
    runs.set_defaults(handler=list_runs)
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
    except (ClientError, httpx.HTTPError) as exc:  # the client raises its own; httpx's: a bug
        message = f"otelstream: {exc}"
        errors = Console(stderr=True, highlight=False, markup=False)
        for line in message.splitlines():  # a 422: a "field: problem" line per error
            errors.print(Text(inert(line), style="red"), soft_wrap=True)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main"]
