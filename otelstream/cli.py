"""The `otelstream` command: start or follow a run and draw its live tree, list runs, serve an app.

A task's progress shows as a bar beside it and its newest log lines under it.

Needs the `client` extra (httpx, httpx-sse, rich); `serve` needs uvicorn.
Exit status: 0 the run succeeded, 1 it failed (or was cancelled), 2 bad usage,
3 the server refused or could not be reached.

Everything printed comes from outside (task names, errors, the server's answers,
URLs) or holds brackets (`pip install 'otelstream[example]'`): it is printed as
rich `Text`, on consoles with markup off, so nothing is read as rich markup.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from otelstream._run_view import STATUS_STYLE, STATUS_TEXT, RunView, format_ms
from otelstream.client import Client, ClientError

EXAMPLE_APP = "examples.fastapi-telemetry.main:app"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def follow(client: Client, run_id: str, console: Console) -> int:
    """Draw the run live until it ends; the exit status says how it ended."""
    view = RunView(run_id)
    if console.is_terminal:
        with Live(view, console=console, refresh_per_second=8):
            for event in client.events(run_id):
                view.apply(event)
    else:  # a pipe or a file: the final tree only, once
        for event in client.events(run_id):
            view.apply(event)
        console.print(view)
    console.print(Text(view.summary()), soft_wrap=True)
    try:
        trace_url = client.get_run(run_id).get("trace_url")
    except (ClientError, httpx.HTTPError):
        trace_url = None
    if trace_url:
        console.print(Text(f"trace: {trace_url}"), soft_wrap=True)
    return EXIT_OK if view.status == "success" else EXIT_FAILED


def parse_param(text: str) -> tuple[str, Any]:
    """`k=v`: v is JSON when it parses (`seconds=0.5`, `tags=["a"]`), a string otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def base_url(text: str) -> str:
    """The router's URL; `localhost:8000` means `http://localhost:8000`, as curl reads it."""
    return text if _SCHEME.match(text) else f"http://{text}"


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _run(args: argparse.Namespace, console: Console) -> int:
    with Client(args.url) as client:
        started = client.start(args.pipeline, dict(args.param))
        console.print(Text(f"started run {started.run_id}", style="dim"))
        return follow(client, started.run_id, console)


def _tail(args: argparse.Namespace, console: Console) -> int:
    with Client(args.url) as client:
        return follow(client, args.run_id, console)


def _runs(args: argparse.Namespace, console: Console) -> int:
    with Client(args.url) as client:
        page = client.runs(pipeline=args.pipeline, status=args.status, limit=args.limit)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("run", "name", "status", "started", "took", "error"):
        table.add_column(column)
    for run in page["runs"]:
        status = run["status"]
        table.add_row(
            Text(run["run_id"]),
            Text(run["name"]),
            Text(STATUS_TEXT.get(status, status), style=STATUS_STYLE.get(status, "")),
            Text(run["started_at"]),
            Text(format_ms(run.get("duration_ms"))),
            Text(run.get("error_type") or "", style="red"),
        )
    if page["runs"]:
        console.print(table)
    else:
        console.print(Text("no runs", style="dim"))
    if page.get("next_cursor"):
        console.print(Text(f"more: --cursor {page['next_cursor']}", style="dim"))
    return EXIT_OK


def _serve(args: argparse.Namespace, console: Console) -> int:
    try:
        import uvicorn
    except ImportError:
        console.print(Text("otelstream serve needs uvicorn: pip install 'otelstream[example]'"))
        return EXIT_USAGE
    sys.path.insert(0, os.path.abspath(args.app_dir))  # as `uvicorn --app-dir` does
    uvicorn.run(args.app, host=args.host, port=args.port, reload=args.reload)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otelstream",
        description="Follow otelstream runs in the terminal, or serve an app.",
        epilog="exit status: 0 the run succeeded, 1 it failed, 2 bad usage, "
        "3 the server refused or could not be reached",
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
    run.set_defaults(handler=_run)
    tail = commands.add_parser("tail", help="draw the live tree of a run that was started")
    tail.add_argument("url", type=base_url)
    tail.add_argument("run_id")
    tail.set_defaults(handler=_tail)
    runs = commands.add_parser("runs", help="list recent and running runs, newest first")
    runs.add_argument("url", type=base_url)
    runs.add_argument("--pipeline", help="only runs of this pipeline")
    runs.add_argument("--status", choices=["running", "success", "error", "cancelled"])
    runs.add_argument("--limit", type=int, default=50)
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
        errors.print(Text(message, style="red"), soft_wrap=True)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main"]
