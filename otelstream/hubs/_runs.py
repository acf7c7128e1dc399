"""A run's span tree and status, folded from its events: shared by every hub."""

from __future__ import annotations

from typing import Any

from otelstream.events import (
    PIPELINE_COMPLETED,
    PIPELINE_STARTED,
    STARTED_TYPES,
    TASK_ERROR,
    Event,
    format_time,
)


class SpanNode:
    __slots__ = (
        "end_ns",
        "error",
        "error_type",
        "name",
        "parent_span_id",
        "span_id",
        "start_ns",
        "status",
    )

    def __init__(self, event: Event) -> None:
        self.span_id = event.span_id
        self.parent_span_id = event.parent_span_id
        self.name = event.name
        self.start_ns = event.time_ns
        self.end_ns: int | None = None
        self.status = "running"
        self.error: str | None = None
        self.error_type: str | None = None

    def finish(self, event: Event) -> None:
        self.end_ns = event.time_ns
        if event.type == PIPELINE_COMPLETED:
            self.status = event.status or "success"
        else:
            self.status = "error" if event.type == TASK_ERROR else "success"
        self.error, self.error_type = event.error, event.error_type

    def to_dict(self, children: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "span_id": format(self.span_id, "016x"),
            "parent_span_id": (
                None if self.parent_span_id is None else format(self.parent_span_id, "016x")
            ),
            "name": self.name,
            "status": self.status,
            "started_at": format_time(self.start_ns),
            "ended_at": None if self.end_ns is None else format_time(self.end_ns),
            "duration_ms": None if self.end_ns is None else (self.end_ns - self.start_ns) / 1e6,
            "error": self.error,
            "error_type": self.error_type,
            "children": children,
        }


class RunTree:
    """The spans of one run by id, bounded: past `max_spans` new spans are counted, not kept."""

    __slots__ = ("dropped_spans", "max_spans", "nodes", "root")

    def __init__(self, max_spans: int) -> None:
        self.nodes: dict[int, SpanNode] = {}
        self.root: SpanNode | None = None
        self.max_spans = max_spans
        self.dropped_spans = 0

    def apply(self, event: Event) -> None:
        if event.type in STARTED_TYPES:
            if len(self.nodes) >= self.max_spans:
                self.dropped_spans += 1
                return
            node = self.nodes[event.span_id] = SpanNode(event)
            if event.type == PIPELINE_STARTED:
                self.root = node
        else:
            found = self.nodes.get(event.span_id)
            if found is not None:
                found.finish(event)

    def to_dict(self, run_id: str, last_seq: int) -> dict[str, Any]:
        children: dict[int | None, list[SpanNode]] = {}
        for node in self.nodes.values():
            if node is not self.root:
                children.setdefault(node.parent_span_id, []).append(node)

        def build(node: SpanNode) -> dict[str, Any]:
            kids = sorted(children.get(node.span_id, ()), key=lambda n: n.start_ns)
            return node.to_dict([build(kid) for kid in kids])

        root = self.root
        tree = build(root) if root is not None else None
        return {
            "run_id": run_id,
            "name": root.name if root else None,
            "status": root.status if root else "running",
            "started_at": tree["started_at"] if tree else None,
            "ended_at": tree["ended_at"] if tree else None,
            "duration_ms": tree["duration_ms"] if tree else None,
            "error": root.error if root else None,
            "error_type": root.error_type if root else None,
            "last_seq": last_seq,
            "dropped_spans": self.dropped_spans,
            "tree": tree,
        }
