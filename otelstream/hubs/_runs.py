"""A run's span tree and status, folded from its events: shared by every hub."""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

from otelstream.events import (
    ENDED_TYPES,
    PIPELINE_COMPLETED,
    PIPELINE_STARTED,
    STARTED_TYPES,
    TASK_ERROR,
    Event,
    format_time,
)


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

    def finished(self, event: Event) -> SpanNode:
        if event.type == PIPELINE_COMPLETED:
            status = event.status or "success"
        else:
            status = "error" if event.type == TASK_ERROR else "success"
        return self._replace(
            end_ns=event.time_ns, status=status, error=event.error, error_type=event.error_type
        )

    def to_dict(self, children: list[dict[str, Any]]) -> dict[str, Any]:
        end = self.end_ns
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
            "children": children,
        }


class RunTree:
    """The spans of one run by id, bounded: past `max_spans` new spans are counted, not kept.

    Not thread-safe: the hub serialises `apply`; `snapshot` is cheap enough to take under
    the hub's lock, and the JSON is built from it outside.
    """

    __slots__ = ("dropped_spans", "max_spans", "nodes", "root_span_id")

    def __init__(self, max_spans: int) -> None:
        self.nodes: dict[int, SpanNode] = {}
        self.root_span_id: int | None = None
        self.max_spans = max_spans
        self.dropped_spans = 0

    def apply(self, event: Event) -> None:
        if event.type in STARTED_TYPES:
            if len(self.nodes) >= self.max_spans:
                self.dropped_spans += 1
                return
            self.nodes[event.span_id] = SpanNode(
                event.span_id, event.parent_span_id, event.name, event.time_ns
            )
            if event.type == PIPELINE_STARTED:
                self.root_span_id = event.span_id
        elif event.type in ENDED_TYPES:  # not a task's log or progress: those end nothing
            node = self.nodes.get(event.span_id)
            if node is not None:
                self.nodes[event.span_id] = node.finished(event)

    def nbytes(self) -> int:
        """About what the tree keeps in memory: its dict, nodes and their own values."""
        size = sys.getsizeof(self.nodes)
        for node in self.nodes.values():
            size += sys.getsizeof(node) + 3 * 32  # the tuple, its ints (start, end, id)
            size += sys.getsizeof(node.name) if node.name else 0
            size += sys.getsizeof(node.error) if node.error else 0
        return size

    def snapshot(self, run_id: str, last_seq: int) -> TreeSnapshot:
        return TreeSnapshot(
            run_id, last_seq, list(self.nodes.values()), self.root_span_id, self.dropped_spans
        )


class TreeSnapshot(NamedTuple):
    run_id: str
    last_seq: int
    nodes: list[SpanNode]
    root_span_id: int | None
    dropped_spans: int

    def to_dict(self) -> dict[str, Any]:
        """The run as `GET /runs/{id}` shows it: summary fields, then the nested tree."""
        root: SpanNode | None = None
        children: dict[int | None, list[SpanNode]] = {}
        for node in self.nodes:
            if node.span_id == self.root_span_id:
                root = node
            else:
                children.setdefault(node.parent_span_id, []).append(node)

        def build(node: SpanNode) -> dict[str, Any]:
            kids = sorted(children.get(node.span_id, ()), key=lambda n: n.start_ns)
            return node.to_dict([build(kid) for kid in kids])

        tree = build(root) if root is not None else None
        return {
            "run_id": self.run_id,
            "name": root.name if root else None,
            "status": root.status if root else "running",
            "started_at": tree["started_at"] if tree else None,
            "ended_at": tree["ended_at"] if tree else None,
            "duration_ms": tree["duration_ms"] if tree else None,
            "error": root.error if root else None,
            "error_type": root.error_type if root else None,
            "last_seq": self.last_seq,
            "dropped_spans": self.dropped_spans,
            "tree": tree,
        }
