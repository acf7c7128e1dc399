"""One span of a run's tree, as `GET /runs/{id}` shows it."""

from __future__ import annotations

from typing import Any, NamedTuple

from otelstream.events import PIPELINE_COMPLETED, TASK_ERROR, Event, format_time


class SpanNode(NamedTuple):
    """Immutable, so a snapshot of the tree is a copy of the node list, not of every node."""

    span_id: int
    parent_span_id: int | None
    name: str
    start_ns: int
    end_ns: int | None = None
    status: str = "running"
    error: str | None = None
    error_type: str | None = None
    service: str | None = None  # another service's span, received over OTLP
    expected: tuple[int, int | None] | None = None  # its usual duration and p90, in ns
    overdue: bool = False  # it ran well past its usual time (a `task_overdue` said so)

    def finished(self, event: Event) -> SpanNode:
        if event.type == PIPELINE_COMPLETED:
            status = event.status or "success"
        else:
            status = "error" if event.type == TASK_ERROR else "success"
        # built directly: `_replace` goes through a dict and `_make` (a span's end, per span)
        return SpanNode(
            self.span_id,
            self.parent_span_id,
            self.name,
            self.start_ns,
            event.time_ns,
            status,
            event.error,
            event.error_type,
            self.service,
            self.expected,
            self.overdue,
        )

    def to_dict(self, children: list[dict[str, Any]]) -> dict[str, Any]:
        end = self.end_ns
        usual: dict[str, Any] = {}
        if self.expected is not None:
            expected, p90 = self.expected
            usual["expected_duration_ms"] = expected / 1e6
            if p90 is not None:
                usual["expected_p90_ms"] = p90 / 1e6
        if self.overdue:
            usual["overdue"] = True
        return {
            "span_id": format(self.span_id, "016x"),
            "parent_span_id": (
                None if self.parent_span_id is None else format(self.parent_span_id, "016x")
            ),
            "name": self.name,
            "status": self.status,
            "started_at": format_time(self.start_ns),
            "ended_at": None if end is None else format_time(end),
            "duration_ms": None if end is None else (end - self.start_ns) / 1e6,
            "error": self.error,
            "error_type": self.error_type,
            **({} if self.service is None else {"service": self.service}),
            **usual,
            "children": children,
        }
