"""What is usual, in the terminal (issue 31): how long a run usually takes and about how long
is left, the run turned "slower than usual", a task flagged overdue; the live view and the
piped lines both say it through these, so they say it alike.

Times here are rough on purpose (a tenth of a second): a usual time is a median of past runs,
and "about 0.8 s left" changes a few times a second on a live screen; more digits would only
flicker and claim a precision the history does not have.
"""

from __future__ import annotations

from collections.abc import Iterable

from otelstream.cli._span import Span

SLOWER = "slower than usual"
"""The run, once it has run past its usual p90 (or the server flagged it overdue)."""
ANY_MOMENT = "any moment now"
"""The run, past its usual time but not past its p90: it should end, and has not yet."""


def format_rough(ms: float) -> str:
    """A usual time or what is left: whole milliseconds under 0.1 s, tenths of seconds under a
    minute, then minutes and seconds."""
    ms = max(0.0, ms)
    if ms < 100:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{int(ms // 60_000)} min {ms % 60_000 / 1000:.0f} s"


def time_left_ms(root: Span, spans: Iterable[Span], now: float) -> float | None:
    """About how long the run has left: the run's usual time less its age, or, when more,
    what a running task still has of its own usual time; None when the run has no usual
    time. Never negative."""
    if root.usual is None or root.started is None:
        return None
    left = root.usual.duration_ms - (now - root.started) * 1000
    for span in spans:
        if span.status == "running" and span.usual is not None and span.started is not None:
            left = max(left, span.usual.duration_ms - (now - span.started) * 1000)
    return max(0.0, left)


def run_note(root: Span, spans: Iterable[Span], now: float, slower: bool) -> str:
    """The header's word on what is usual: `usually 1.2 s · about 0.8 s left` while it runs,
    `· any moment now` past its usual time, `· slower than usual` past its p90 or once
    flagged (`slower`); `usually 1.2 s` alone once it ended; "" without a history."""
    usual = root.usual
    if usual is None:
        return ""
    note = f"usually {format_rough(usual.duration_ms)}"
    if root.status != "running" or root.started is None:
        return f"{note} · was {SLOWER}" if slower else note
    elapsed = (now - root.started) * 1000
    if slower or (usual.p90_ms is not None and elapsed > usual.p90_ms):
        return f"{note} · {SLOWER}"
    left = time_left_ms(root, spans, now) or 0.0
    if left < 50:  # "about 0.0 s left" says nothing
        return f"{note} · {ANY_MOMENT}"
    return f"{note} · about {format_rough(left)} left"


def overdue_note(span: Span) -> str:
    """A task flagged overdue: `overdue, usually 0.3 s` while it runs; once it ended, only
    that it was slow (it must not look running)."""
    usual = "" if span.usual is None else f", usually {format_rough(span.usual.duration_ms)}"
    return f"overdue{usual}" if span.status == "running" else f"was overdue{usual}"


def overdue_line(kind: str, running_ms: float | None, span: Span) -> str:
    """The piped line's words for a `task_overdue` (`overdue: 2.0 s, usually 0.3 s`) or a
    `pipeline_overdue` (`slower than usual: 2.0 s, usually 0.3 s`)."""
    word = SLOWER if kind == "pipeline_overdue" else "overdue"
    line = word if running_ms is None else f"{word}: {format_rough(running_ms)}"
    if span.usual is not None:
        line += f", usually {format_rough(span.usual.duration_ms)}"
    return line


__all__ = [
    "ANY_MOMENT",
    "SLOWER",
    "format_rough",
    "overdue_line",
    "overdue_note",
    "run_note",
    "time_left_ms",
]
