"""The `otelstream` command: start or follow a run and draw its live tree, or serve an app.

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
import threading
from collections.abc import Sequence
from typing import Any

import httpx
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text
from rich.tree import Tree

from otelstream.client import Client, ClientError

EXAMPLE_APP = "examples.fastapi-telemetry.main:app"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3

_STATUS = {"running": "running…", "success": "done", "error": "failed", "cancelled": "cancelled"}
_STYLE = {"running": "blue", "success": "green", "error": "red", "cancelled": "yellow"}


def format_ms(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{int(ms // 60_000)} min {ms % 60_000 / 1000:.0f} s"


class _Span:
    __slots__ = ("children", "duration_ms", "error", "error_type", "name", "status")

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = "running"
        self.duration_ms: float | None = None
        self.error: str | None = None
        self.error_type: str | None = None
        self.children: list[str] = []


class RunView:
    """A run's span tree folded from its events; rendered by rich a few times a second.

    Events are applied as they come (O(1) each); the tree is drawn only when
    rich refreshes, so a run of thousands of tasks costs one walk per frame.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.spans: dict[str, _Span] = {}
        self.root: str | None = None
        self.status = "running"
        self._lock = threading.Lock()  # rich refreshes from its own thread

    def apply(self, event: dict[str, Any]) -> None:
        with self._lock:
            span_id, kind = event["span_id"], event["type"]
            span = self.spans.get(span_id)
            if span is None:
                span = self.spans[span_id] = _Span(event["name"])
                parent = self.spans.get(event.get("parent_span_id") or "")
                if parent is not None:
                    parent.children.append(span_id)
                elif self.root is None:
                    self.root = span_id
                else:  # a parent the replay no longer has: keep the span under the root
                    self.spans[self.root].children.append(span_id)
            if kind in ("task_completed", "task_error", "pipeline_completed"):
                span.duration_ms = event.get("duration_ms")
                span.error, span.error_type = event.get("error"), event.get("error_type")
                if kind == "pipeline_completed":
                    span.status = self.status = event.get("status") or "success"
                else:
                    span.status = "error" if kind == "task_error" else "success"

    def __rich__(self) -> RenderableType:
        with self._lock:
            if self.root is None:
                return Text(f"run {self.run_id}: waiting for events…", style="dim")
            tree = Tree(self._label(self.spans[self.root]), guide_style="dim")
            stack = [(tree, self.spans[self.root])]
            while stack:
                branch, span = stack.pop()
                for child_id in span.children:
                    child = self.spans[child_id]
                    stack.append((branch.add(self._label(child)), child))
            return tree

    @staticmethod
    def _label(span: _Span) -> RenderableType:
        text = Text()
        text.append(span.name, style="bold")
        text.append(f"  {_STATUS.get(span.status, span.status)}", style=_STYLE.get(span.status))
        if span.duration_ms is not None:
            text.append(f"  {format_ms(span.duration_ms)}", style="dim")
        if span.error is None and span.error_type is None:
            return text
        error = f"{span.error_type}: {span.error}" if span.error_type else str(span.error)
        return Group(text, Text(error, style="red"))

    def summary(self) -> str:
        root = self.spans.get(self.root or "")
        took = f" in {format_ms(root.duration_ms)}" if root and root.duration_ms is not None else ""
        line = f"run {self.run_id} {_STATUS.get(self.status, self.status)}{took}"
        if root is not None and root.error_type:
            line += f": {root.error_type}: {root.error}"
        return line


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
