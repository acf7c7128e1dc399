"""A run's span tree and status, folded from its events: shared by every hub."""

from __future__ import annotations

from typing import Any, NamedTuple

from otelstream.events import (
    ENDED_TYPES,
    PIPELINE_COMPLETED,
    PIPELINE_OVERDUE,
    PIPELINE_STARTED,
    STARTED_TYPES,
    TASK_ERROR,
    TASK_OVERDUE,
    Event,
)
from otelstream.hubs._sealed_nodes import SealedNodes
from otelstream.hubs._span_node import SpanNode

OVERDUE_TYPES = frozenset({TASK_OVERDUE, PIPELINE_OVERDUE})


WORKER_LOST = "WorkerLost"
"""The `error_type` of a run whose worker died (the Redis hub's lease)."""
UNFINISHED = "Unfinished"
"""The `error_type` of a task that had not ended when its run did."""
UNFINISHED_ERROR = (
    "the run ended before this task did: the process it ran in died, or the run did not wait for it"
)


def _unfinished_error(end: Event) -> str:
    """Why a task open at its run's end never ended, as far as the run's end tells."""
    if end.error_type == WORKER_LOST:
        return "the run ended before this task did: its worker died"
    if end.status == "cancelled":
        return "the run was cancelled before this task ended"
    return UNFINISHED_ERROR


class RunTree:
    """The spans of one run by id, bounded: past `max_spans` new spans are counted, not kept.

    Not thread-safe: the hub serialises `apply`; `snapshot` is cheap enough to take under
    the hub's lock, and the JSON is built from it outside.
    """

    __slots__ = ("dropped_spans", "max_spans", "nodes", "root_span_id", "sealed")

    def __init__(self, max_spans: int) -> None:
        self.nodes: dict[int, SpanNode] = {}
        self.sealed: SealedNodes | None = None
        self.root_span_id: int | None = None
        self.max_spans = max_spans
        self.dropped_spans = 0

    def apply(self, event: Event) -> None:
        if event.type in STARTED_TYPES:
            if len(self.nodes) >= self.max_spans:
                self.dropped_spans += 1
                return
            self.nodes[event.span_id] = SpanNode(
                event.span_id,
                event.parent_span_id,
                event.name,
                event.time_ns,
                service=event.service,
                expected=(
                    None
                    if event.expected_ns is None
                    else (event.expected_ns, event.expected_p90_ns)
                ),
            )
            if event.type == PIPELINE_STARTED:
                self.root_span_id = event.span_id
        elif event.type in ENDED_TYPES:  # not a task's log or progress: those end nothing
            node = self.nodes.get(event.span_id)
            if node is not None:
                self.nodes[event.span_id] = node.finished(event)
            if event.type == PIPELINE_COMPLETED:
                self._fail_unfinished()
        elif event.type in OVERDUE_TYPES:
            node = self.nodes.get(event.span_id)
            if node is not None and node.end_ns is None:
                self.nodes[event.span_id] = node._replace(overdue=True)

    def unfinished_ends(self, end: Event) -> list[Event]:
        """The ends a run's `pipeline_completed` brings to the tasks still open in it, to go
        into its stream right before it (the one rule, for every hub): each a `task_error`,
        `error_type` Unfinished, at the run's end; the newest first, so a child ends before
        its parent. A task still open when its run ends never ends in it otherwise (the hubs
        drop later events): its process died, or the run did not wait for it."""
        error = _unfinished_error(end)
        ends = []
        for node in reversed(self.nodes.values()):
            if node.end_ns is None and node.span_id != self.root_span_id:
                ends.append(
                    Event(
                        TASK_ERROR,
                        node.name,
                        end.run_id,
                        node.span_id,
                        node.parent_span_id,
                        end.time_ns,
                        duration_ns=max(0, end.time_ns - node.start_ns),
                        error=error,
                        error_type=UNFINISHED,
                        service=node.service,
                    )
                )
        return ends

    def _fail_unfinished(self) -> None:
        """The run is over: a task still open never ends in it (the hubs drop later events),
        so it shows as failed, not running forever. Its process died (a worker that a task was
        handed to through `otelstream.propagation`, killed), or the run did not wait for it."""
        nodes = self.nodes
        for span_id, node in nodes.items():
            if node.end_ns is None and node.status == "running":
                nodes[span_id] = node._replace(
                    status="error", error=UNFINISHED_ERROR, error_type=UNFINISHED
                )

    def seal(self) -> int:
        """The run is over: keep its spans in flat arrays (about 45 bytes a span instead of
        300), read back only by `snapshot`; returns the bytes kept."""
        if self.sealed is None:
            self.sealed = SealedNodes(self.nodes.values())
            self.nodes = {}
        return self.sealed.nbytes()

    def snapshot(self, run_id: str, last_seq: int) -> TreeSnapshot:
        nodes = list(self.nodes.values()) if self.sealed is None else self.sealed.nodes()
        return TreeSnapshot(run_id, last_seq, nodes, self.root_span_id, self.dropped_spans)


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

        placeholders = _placeholders(children, root)

        def build(node: SpanNode) -> dict[str, Any]:
            kids = sorted(children.get(node.span_id, ()), key=lambda n: n.start_ns)
            shown = node.to_dict([build(kid) for kid in kids])
            if node.span_id in placeholders:
                shown["placeholder"] = True
            return shown

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


def _placeholders(children: dict[int | None, list[SpanNode]], root: SpanNode | None) -> set[int]:
    """Spans whose parent has not arrived yet (a service's spans come when they end, children
    first) hang under a placeholder for it, under the root, until it arrives: a node marked
    `placeholder`, named "…", that takes the parent's place and id."""
    if root is None:
        return set()
    known = {node.span_id for kids in children.values() for node in kids} | {root.span_id}
    missing = [parent for parent in children if parent is not None and parent not in known]
    for parent in missing:
        start = min(node.start_ns for node in children[parent])
        children.setdefault(root.span_id, []).append(SpanNode(parent, root.span_id, "…", start))
    return set(missing)
