"""RunView: a run's span tree folded from its events, with each task's progress and newest logs,
rendered by rich (the `otelstream` command draws it live)."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from rich.tree import Tree


def format_ms(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{int(ms // 60_000)} min {ms % 60_000 / 1000:.0f} s"


STATUS_TEXT = {
    "running": "running…",
    "success": "done",
    "error": "failed",
    "cancelled": "cancelled",
}
STATUS_STYLE = {"running": "blue", "success": "green", "error": "red", "cancelled": "yellow"}
_LEVEL_STYLE = {"DEBUG": "dim", "TRACE": "dim", "INFO": "", "WARN": "yellow", "WARNING": "yellow"}
_LEVEL_STYLE.update({"ERROR": "red", "FATAL": "bold red", "CRITICAL": "bold red"})
_SPAN_TYPES = ("pipeline_started", "task_started", "task_completed", "task_error")
LOG_LINES = 5
"""Log lines shown under each task: its newest."""


class _Span:
    __slots__ = (
        "children",
        "duration_ms",
        "error",
        "error_type",
        "log_count",
        "logs",
        "name",
        "progress",
        "status",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = "running"
        self.duration_ms: float | None = None
        self.error: str | None = None
        self.error_type: str | None = None
        self.children: list[str] = []
        self.logs: deque[tuple[str, str]] = deque(maxlen=LOG_LINES)  # (level, message)
        self.log_count = 0
        self.progress: tuple[float, float | None, str] | None = None  # done, total, message


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
        self.logs_dropped = 0
        self._lock = threading.Lock()  # rich refreshes from its own thread

    def apply(self, event: dict[str, Any]) -> None:
        with self._lock:
            kind = event.get("type")
            if kind in ("task_log", "task_progress"):
                self._inside(event)
                return
            if kind == "logs_dropped":
                self.logs_dropped = int(event.get("dropped") or 0)
                return
            if kind not in _SPAN_TYPES and kind != "pipeline_completed":
                return  # a type this version does not know: ignored, as the schema asks
            span_id = event["span_id"]
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

    def _inside(self, event: dict[str, Any]) -> None:
        """A task's log line or progress (lock held); unknown tasks' go to the root."""
        span = self.spans.get(event.get("span_id") or "") or self.spans.get(self.root or "")
        if span is None:
            return
        if event["type"] == "task_progress":
            total = event.get("total")
            span.progress = (
                float(event.get("done") or 0),
                float(total) if isinstance(total, int | float) and total > 0 else None,
                str(event.get("message") or ""),
            )
        else:
            span.log_count += 1
            span.logs.append((str(event.get("level") or "INFO"), str(event.get("message") or "")))

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
        text.append(
            f"  {STATUS_TEXT.get(span.status, span.status)}", style=STATUS_STYLE.get(span.status)
        )
        if span.duration_ms is not None:
            text.append(f"  {format_ms(span.duration_ms)}", style="dim")
        parts: list[RenderableType] = [text]
        if span.progress is not None:
            parts.append(_progress(*span.progress))
        if span.error is not None or span.error_type is not None:
            error = f"{span.error_type}: {span.error}" if span.error_type else str(span.error)
            parts.append(Text(error, style="red"))
        if span.log_count > len(span.logs):
            parts.append(Text(f"… {span.log_count - len(span.logs)} earlier log lines", "dim"))
        for level, message in span.logs:
            line = Text(f"{level:<5} ", style=_LEVEL_STYLE.get(level, "") or "dim")
            line.append(message, style=_LEVEL_STYLE.get(level, ""))
            parts.append(line)
        return parts[0] if len(parts) == 1 else Group(*parts)

    def summary(self) -> str:
        root = self.spans.get(self.root or "")
        took = f" in {format_ms(root.duration_ms)}" if root and root.duration_ms is not None else ""
        line = f"run {self.run_id} {STATUS_TEXT.get(self.status, self.status)}{took}"
        if root is not None and root.error_type:
            line += f": {root.error_type}: {root.error}"
        if self.logs_dropped:
            line += f" ({self.logs_dropped} log lines were not streamed)"
        return line


def _progress(done: float, total: float | None, message: str) -> RenderableType:
    """A bar (pulsing when the total is unknown) and `done/total message`."""
    count = f"{done:g}/{total:g}" if total is not None else f"{done:g}"
    grid = Table.grid(padding=(0, 1))
    grid.add_row(
        ProgressBar(total=total, completed=done, width=24),
        Text(f"{count} {message}".rstrip(), style="dim"),
    )
    return grid


__all__ = ["LOG_LINES", "STATUS_STYLE", "STATUS_TEXT", "RunView", "format_ms"]
