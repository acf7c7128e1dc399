"""RunView: a run's span tree folded from its events, with each task's progress and newest logs,
rendered by rich (the `otelstream` command draws it live).

Every text from the run (names, errors, log lines) is drawn through `inert`: it can never drive
the terminal. An error is shown once, on the deepest row it reached, on one line cut at the
console's width (`full_errors` shows it whole).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from otelstream.cli._format import (
    STATUS_STYLE,
    STATUS_TEXT,
    clipped,
    format_elapsed,
    format_ms,
    parse_time,
)
from otelstream.cli._span import LOG_LINES
from otelstream.cli._span import Span as _Span
from otelstream.cli._usual import overdue_note, run_note
from otelstream.client import OVERDUE_TYPES, overdue, usual
from otelstream.events._inert import inert
from otelstream.events._wire import OUTCOME_LOGGER

_LEVEL_STYLE = {"DEBUG": "dim", "TRACE": "dim", "INFO": "", "WARN": "yellow", "WARNING": "yellow"}
_LEVEL_STYLE.update({"ERROR": "red", "FATAL": "bold red", "CRITICAL": "bold red"})
ERROR_LEVELS = frozenset({"ERROR", "FATAL", "CRITICAL"})
_SPAN_TYPES = ("pipeline_started", "task_started", "task_completed", "task_error")
CANCELLED_TYPE = "RunCancelled"
"""The error type of a task that stopped because its run was cancelled: not a failure."""


class RunView:
    """A run's span tree folded from its events; rendered by rich a few times a second.

    Events are applied as they come (O(1) each); the tree is drawn only when
    rich refreshes, so a run of thousands of tasks costs one walk per frame.
    """

    def __init__(
        self, run_id: str, *, full_errors: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self.run_id = run_id
        self.full_errors = full_errors
        self.clock = clock
        self.spans: dict[str, _Span] = {}
        self.root: str | None = None
        self.status = "running"
        self.logs_dropped = 0
        self.error_logs = 0
        self.overdue = False  # the run was flagged slower than usual (pipeline_overdue)
        self._lock = threading.Lock()  # rich refreshes from its own thread

    def apply(self, event: dict[str, Any]) -> _Span | None:
        """Fold one event in; the span it is about (None for other events)."""
        with self._lock:
            kind = event.get("type")
            if kind in ("task_log", "task_progress"):
                if event.get("logger") == OUTCOME_LOGGER:
                    return None  # the run's end, which its last line shows already
                return self._inside(event)
            if kind == "logs_dropped":
                self.logs_dropped = int(event.get("dropped") or 0)
                return None
            if kind in OVERDUE_TYPES:
                return self._overdue(event)
            if kind not in _SPAN_TYPES and kind != "pipeline_completed":
                return None  # a type this version does not know: ignored, as the schema asks
            span_id = str(event.get("span_id"))
            span = self.spans.get(span_id)
            if span is None:
                span = self.spans[span_id] = _Span(inert(event.get("name", "")), None)
                self._attach(span_id, span, event.get("parent_span_id"))
            elif span.placeholder:  # its children came first (spans of another service)
                span.placeholder, span.name = False, inert(event.get("name", ""))
                if span.parent is not None:
                    span.parent.children.remove(span_id)
                self._attach(span_id, span, event.get("parent_span_id"))
            if isinstance(service := event.get("service"), str):
                span.service = inert(service)
            if kind in ("pipeline_started", "task_started"):
                span.started = parse_time(event.get("timestamp"))
                span.usual = usual(event)
            else:
                self._ended(span, kind, event)
            return span

    def _attach(self, span_id: str, span: _Span, parent_id: Any) -> None:
        """Under its parent, or a placeholder for it (OTLP sends children first) under the
        root until it arrives; the run's root has none."""
        parent = self.spans.get(parent_id or "")
        if parent is None and self.root is not None:
            parent = root = self.spans[self.root]
            if parent_id:
                parent = self.spans[parent_id] = _Span("…", root)
                parent.placeholder = True
                root.children.append(parent_id)
        span.parent = parent
        if parent is not None:
            parent.children.append(span_id)
        else:
            self.root = span_id

    def _ended(self, span: _Span, kind: object, event: dict[str, Any]) -> None:
        span.duration_ms = event.get("duration_ms")
        span.error, span.error_type = event.get("error"), event.get("error_type")
        if kind == "pipeline_completed":
            span.status = self.status = event.get("status") or "success"
        elif kind == "task_error":
            span.status = "cancelled" if span.error_type == CANCELLED_TYPE else "error"
        else:
            span.status = "success"
        if span.started is None and span.duration_ms is not None:
            ended = parse_time(event.get("timestamp"))
            span.started = None if ended is None else ended - span.duration_ms / 1000

    def _overdue(self, event: dict[str, Any]) -> _Span | None:
        """A task (or the run) flagged overdue while it runs (lock held); one never seen
        started, or already ended (a flag can only come first), is left as it is."""
        span = self.spans.get(str(event.get("span_id")))
        flag = overdue(event)
        if span is None or flag is None or span.status != "running":
            return None
        span.overdue_ms = flag.running_ms if flag.running_ms is not None else 0.0  # flagged
        span.usual = span.usual or flag.usual
        if flag.is_run:
            self.overdue = True
        return span

    def _inside(self, event: dict[str, Any]) -> _Span | None:
        """A task's log line or progress (lock held); unknown tasks' go to the root."""
        span = self.spans.get(event.get("span_id") or "") or self.spans.get(self.root or "")
        if span is None:
            return None
        if event["type"] == "task_progress":
            total = event.get("total")
            span.progress = (
                float(event.get("done") or 0),
                float(total) if isinstance(total, int | float) and total > 0 else None,
                inert(event.get("message") or ""),
            )
        else:
            level = inert(event.get("level") or "INFO")
            span.log_count += 1
            self.error_logs += level in ERROR_LEVELS
            message = inert(event.get("message") or "")
            service = event.get("service")
            if isinstance(service, str) and service != span.service:  # received over OTLP
                message = f"[{inert(service)}] {message}"
            span.logs.append((level, message))
        return span

    def shown_failure(self, span: _Span) -> str | None:
        """The span's failure if this row is where it shows: not when a child failed with the
        very same error (an exception that went up through its parents shows once, where it
        was raised), and not a cancellation (its own status says it)."""
        failure = span.failure()
        if failure is None or span.error_type == CANCELLED_TYPE or span.status == "cancelled":
            return None
        for child_id in span.children:
            if self.spans[child_id].failure() == failure:
                return None
        return failure

    def __rich__(self) -> RenderableType:
        with self._lock:
            if self.root is None:
                return Text(f"run {self.run_id}: waiting for events…", style="dim")
            now = self.clock()
            tree = Tree(self._label(self.spans[self.root], now), guide_style="dim")
            stack = [(tree, self.spans[self.root])]
            while stack:
                branch, span = stack.pop()
                for child_id in span.children:
                    child = self.spans[child_id]
                    stack.append((branch.add(self._label(child, now)), child))
            return tree

    def _label(self, span: _Span, now: float) -> RenderableType:
        text = Text()
        if span.placeholder:
            return Text("…  (its span has not arrived yet)", style="dim")
        text.append(span.name, style="bold")
        if span.service is not None:
            text.append(f"  {span.service}", style="cyan")
        text.append(
            f"  {STATUS_TEXT.get(span.status, inert(span.status))}",
            style=STATUS_STYLE.get(span.status),
        )
        if span.duration_ms is not None:
            text.append(f"  {format_ms(span.duration_ms)}", style="dim")
        elif span.status == "running" and span.started is not None:
            text.append(f" {format_elapsed(now - span.started)}", style="dim")
        if span.overdue_ms is not None and span is not self.spans.get(self.root or ""):
            style = "bold yellow" if span.status == "running" else "yellow"
            text.append(f"  {overdue_note(span)}", style=style)
        elif span.parent is None and (
            note := run_note(span, self.spans.values(), now, self.overdue)
        ):
            text.append(f"  {note}", style="yellow" if "slower" in note else "dim")
        text.no_wrap, text.overflow = not self.full_errors, "ellipsis"
        parts: list[RenderableType] = [text]
        if span.progress is not None:
            parts.append(_progress(*span.progress))
        failure = self.shown_failure(span)
        if failure is not None:
            parts.append(error_text(failure, self.full_errors))
        if span.log_count > len(span.logs):
            parts.append(Text(f"… {span.log_count - len(span.logs)} earlier log lines", "dim"))
        for level, message in span.logs:
            line = Text(f"{level:<5} ", style=_LEVEL_STYLE.get(level, "") or "dim")
            line.append(message, style=_LEVEL_STYLE.get(level, ""))
            line.no_wrap, line.overflow = not self.full_errors, "ellipsis"
            parts.append(line)
        return parts[0] if len(parts) == 1 else Group(*parts)

    def summary(self, clip: int | None = 200) -> str:
        """One line, at most `clip` characters: how the run ended, in how long, and what failed
        where (`ValueError in validate`): the error's message is on that row already, so it is
        said once."""
        root = self.spans.get(self.root or "")
        took = f" in {format_ms(root.duration_ms)}" if root and root.duration_ms is not None else ""
        line = f"run {self.run_id} {STATUS_TEXT.get(self.status, inert(self.status))}{took}"
        if root is not None and self.status != "cancelled" and root.failure() is not None:
            line += f": {self._cause(root)}"
        if self.error_logs:
            lines = "line" if self.error_logs == 1 else "lines"
            line += f" ({self.error_logs} ERROR log {lines})"
        if self.logs_dropped:
            line += f" ({self.logs_dropped} log lines were not streamed)"
        return clipped(line, clip)

    def _cause(self, root: _Span) -> str:
        """`ValueError in validate`: the error's type and the task whose row shows it (the
        type alone when that row is the run's own, as of a run whose worker was lost)."""
        failure = root.failure()
        span = root
        while True:  # down to where the very same error was raised
            child = next(
                (self.spans[c] for c in span.children if self.spans[c].failure() == failure), None
            )
            if child is None:
                break
            span = child
        kind = inert(root.error_type or "an error")
        return kind if span is root else f"{kind} in {span.name}"


def error_text(failure: str, full: bool) -> Text:
    """An error on one line cut at the console's width, or (`full`) whole, a line per line."""
    if full:
        return Text("\n".join(inert(line) for line in failure.splitlines()), style="red")
    return Text(inert(failure), style="red", no_wrap=True, overflow="ellipsis")


def _progress(done: float, total: float | None, message: str) -> RenderableType:
    """A bar (pulsing when the total is unknown) and `done/total message`."""
    count = f"{done:g}/{total:g}" if total is not None else f"{done:g}"
    grid = Table.grid(padding=(0, 1))
    grid.add_row(
        ProgressBar(total=total, completed=done, width=24),
        Text(f"{count} {message}".rstrip(), style="dim", no_wrap=True, overflow="ellipsis"),
    )
    return grid


__all__ = ["CANCELLED_TYPE", "ERROR_LEVELS", "LOG_LINES", "RunView", "error_text"]
