"""One span of a run as the command holds it: its place in the tree, its state, what it
reported while it ran, and what is usual for it (`RunView` folds events into these)."""

from __future__ import annotations

from collections import deque

from otelstream.client import Usual

LOG_LINES = 5
"""Log lines shown under each task: its newest."""


class Span:
    __slots__ = (
        "children",
        "duration_ms",
        "error",
        "error_type",
        "log_count",
        "logs",
        "name",
        "overdue_ms",
        "parent",
        "placeholder",
        "progress",
        "service",
        "started",
        "status",
        "usual",
    )

    def __init__(self, name: str, parent: Span | None) -> None:
        self.name = name
        self.parent = parent
        self.placeholder = False  # a parent whose own span has not arrived yet
        self.service: str | None = None  # another service's span, received over OTLP
        self.status = "running"
        self.started: float | None = None  # seconds since the epoch, by the server's clock
        self.duration_ms: float | None = None
        self.error: str | None = None
        self.error_type: str | None = None
        self.children: list[str] = []
        self.logs: deque[tuple[str, str]] = deque(maxlen=LOG_LINES)  # (level, message)
        self.log_count = 0
        self.progress: tuple[float, float | None, str] | None = None  # done, total, message
        self.usual: Usual | None = None  # what its history says, when its pipeline has one
        self.overdue_ms: float | None = None  # how long it had run when flagged overdue

    def depth(self) -> int:
        """How many spans it is under: 0 for the run's own."""
        depth, parent = 0, self.parent
        while parent is not None:
            depth, parent = depth + 1, parent.parent
        return depth

    def failure(self) -> str | None:
        """`Type: message`, or None."""
        if self.error is None and self.error_type is None:
            return None
        return f"{self.error_type}: {self.error or ''}" if self.error_type else str(self.error)


__all__ = ["LOG_LINES", "Span"]
