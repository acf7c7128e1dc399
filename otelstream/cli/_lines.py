"""A run as plain lines, one per event as it happens: what the `otelstream` command writes when
its output is a pipe or a file (a CI log), where a live redraw would show nothing until the end.

    +0.00 s  nested  started
    +0.00 s    prepare  started
    +0.01 s      load  done  2.1 ms
    +0.03 s    validate  failed  1.0 ms  ValueError: result 42 is out of range
    +0.03 s    read_files  INFO  reading part-001.csv
    +0.05 s    GET /price [pricing]  done  3.2 ms
    +1.31 s    fetch_shard_0  overdue: 1.3 s, usually 0.3 s

A task is indented two spaces under its parent, so nesting shows as it does in the tree.
(`[pricing]`: the service that sent the span, for a span received over OTLP.) A task's progress
is one line a second at most (its last value always), and the first time a line is left out
for that, a line says so. A run whose pipeline has a history says how long it usually takes
on its first line (`started  usually 0.3 s`); a task that runs well past its usual time gets
a line as the server flags it (`overdue: …`), and the run as a whole `slower than usual: …`.

Each line is plain text (no colour, no escape sequence): every text from the run goes through
`inert`, and each line is cut at `clip` characters (200 by default) unless asked whole.
"""

from __future__ import annotations

from typing import Any

from otelstream.cli._format import STATUS_TEXT, clipped, format_ms, parse_time
from otelstream.cli._usual import format_rough, overdue_line
from otelstream.cli._view import RunView
from otelstream.client import overdue
from otelstream.events._inert import inert

PROGRESS_EVERY = 1.0
"""Seconds between two progress lines of one task (its last value always shows)."""
THINNED = "(from here, progress shows at most once a second a task, and its last value)"
"""Said once, the first time a progress line is left out."""
INDENT = "  "
"""A task's line is indented this much a level under the run."""
SHOWN_TEXT = 40
"""However deep its task, a line keeps this many characters of its error or message."""


class RunLines:
    """Folds events into a `RunView` (for the summary) and says the line each one makes."""

    def __init__(self, view: RunView, clip: int | None = 200) -> None:
        self.view = view
        self.clip = clip
        self._origin: float | None = None
        self._progress_at: dict[str, float] = {}  # span id -> time of its last progress line
        self._thinned = False

    def line(self, event: dict[str, Any]) -> str | None:
        """Apply `event` to the view; the line it makes, or None (a type not shown)."""
        span = self.view.apply(event)
        kind = event.get("type")
        if span is None:
            return None
        at = parse_time(event.get("timestamp"))
        if self._origin is None and at is not None:
            self._origin = span.started if span.started is not None else at
        offset = "" if at is None or self._origin is None else f"+{format_ms_s(at - self._origin)}"
        head = f"{offset:>9}  {INDENT * span.depth()}{span.name}"
        if span.service is not None:  # another service's span, received over OTLP
            head += f" [{span.service}]"
        if kind == "pipeline_started" and span.usual is not None:
            return f"{head}  started  usually {format_rough(span.usual.duration_ms)}"
        if kind in ("pipeline_started", "task_started"):
            return f"{head}  started"
        if kind in ("task_overdue", "pipeline_overdue"):
            flag = overdue(event)
            running = None if flag is None else flag.running_ms
            return f"{head}  {overdue_line(str(kind), running, span)}"
        if kind == "task_progress":
            return self._progress(head, event, at, span.progress)
        if kind == "task_log":
            level, message = span.logs[-1]
            return self._fit(f"{head}  {level}", message)
        line = f"{head}  {STATUS_TEXT.get(span.status, inert(span.status))}"
        if span.duration_ms is not None:
            line += f"  {format_ms(span.duration_ms)}"
        failure = self.view.shown_failure(span)
        return line if failure is None else self._fit(line, inert(failure))

    def _fit(self, line: str, text: str, sep: str = "  ") -> str:
        """`line` and `text`, the text cut so that the whole is at most `clip` characters."""
        if self.clip is None:
            return f"{line}{sep}{text}".rstrip()
        room = max(SHOWN_TEXT, self.clip - len(line) - len(sep))
        return f"{line}{sep}{clipped(text, room)}".rstrip()

    def _progress(
        self,
        head: str,
        event: dict[str, Any],
        at: float | None,
        progress: tuple[float, float | None, str] | None,
    ) -> str | None:
        if progress is None:
            return None
        done, total, message = progress
        span_id = str(event.get("span_id"))
        last = self._progress_at.get(span_id)
        final = total is not None and done >= total
        if not final and at is not None and last is not None and at - last < PROGRESS_EVERY:
            if self._thinned:
                return None  # coalesced: a CI log gets about a line a second per task
            self._thinned = True
            return f"{head}  {THINNED}"
        if at is not None:
            self._progress_at[span_id] = at
        count = f"{done:g}/{total:g}" if total is not None else f"{done:g}"
        return self._fit(f"{head}  {count}", message, " ")


def format_ms_s(seconds: float) -> str:
    return f"{max(0.0, seconds):.2f} s"


__all__ = ["INDENT", "PROGRESS_EVERY", "THINNED", "RunLines"]
