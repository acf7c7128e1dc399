"""How a run's times and states read in a terminal: durations, ages, timestamps, status words."""

from __future__ import annotations

from datetime import datetime


def format_ms(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{int(ms // 60_000)} min {ms % 60_000 / 1000:.0f} s"


def format_elapsed(seconds: float) -> str:
    """A running task's age: whole tenths of seconds, then minutes (it changes a few times a
    second; more digits would only flicker)."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def parse_time(timestamp: object) -> float | None:
    """An event's RFC 3339 timestamp as seconds since the epoch; None if it has none."""
    if not isinstance(timestamp, str):
        return None
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


STATUS_TEXT = {
    "running": "running…",
    "success": "done",
    "error": "failed",
    "cancelled": "cancelled",
}
STATUS_STYLE = {"running": "blue", "success": "green", "error": "red", "cancelled": "yellow"}


def clipped(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "STATUS_STYLE",
    "STATUS_TEXT",
    "clipped",
    "format_elapsed",
    "format_ms",
    "parse_time",
]
