"""A run's span tree and status, folded from its events: shared by every hub."""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable
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
            **({} if self.service is None else {"service": self.service}),
            "children": children,
        }


class RunTree:
    """The spans of one run by id, bounded: past `max_spans` new spans are counted, not kept.

    Not thread-safe: the hub serialises `apply`; `snapshot` is cheap enough to take under
    the hub's lock, and the JSON is built from it outside.
    """

    __slots__ = ("dropped_spans", "max_spans", "nodes", "root_span_id", "sealed")

    def __init__(self, max_spans: int) -> None:
        self.nodes: dict[int, SpanNode] = {}
        self.sealed: _SealedNodes | None = None
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
            )
            if event.type == PIPELINE_STARTED:
                self.root_span_id = event.span_id
        elif event.type in ENDED_TYPES:  # not a task's log or progress: those end nothing
            node = self.nodes.get(event.span_id)
            if node is not None:
                self.nodes[event.span_id] = node.finished(event)
            if event.type == PIPELINE_COMPLETED:
                self._fail_unfinished()

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
            self.sealed = _SealedNodes(self.nodes.values())
            self.nodes = {}
        return self.sealed.nbytes()

    def snapshot(self, run_id: str, last_seq: int) -> TreeSnapshot:
        nodes = list(self.nodes.values()) if self.sealed is None else self.sealed.nodes()
        return TreeSnapshot(run_id, last_seq, nodes, self.root_span_id, self.dropped_spans)


_STATUSES = ("running", "success", "error", "cancelled")


class _SealedNodes:
    """A finished run's span nodes as columns: ids, times and status codes in arrays, names
    interned (tasks share a few names), errors only for the spans that have one."""

    __slots__ = ("ends", "errors", "ids", "names", "parents", "services", "starts", "statuses")

    def __init__(self, nodes: Iterable[SpanNode]) -> None:
        self.ids, self.parents = array("Q"), array("Q")  # span id 0 is invalid: 0 is "none"
        self.starts, self.ends = array("q"), array("q")  # -1: not ended
        self.statuses = array("b")
        self.names: list[str] = []
        self.errors: dict[int, tuple[str | None, str | None]] = {}
        self.services: dict[int, str] = {}  # only the spans of another service
        for index, node in enumerate(nodes):
            self.ids.append(node.span_id)
            self.parents.append(node.parent_span_id or 0)
            self.starts.append(node.start_ns)
            self.ends.append(-1 if node.end_ns is None else node.end_ns)
            self.statuses.append(_STATUSES.index(node.status))
            self.names.append(sys.intern(node.name))
            if node.error is not None or node.error_type is not None:
                self.errors[index] = (node.error, node.error_type)
            if node.service is not None:
                self.services[index] = sys.intern(node.service)

    def nodes(self) -> list[SpanNode]:
        nodes = []
        for index, span_id in enumerate(self.ids):
            end, parent = self.ends[index], self.parents[index]
            error, error_type = self.errors.get(index, (None, None))
            nodes.append(
                SpanNode(
                    span_id,
                    parent or None,
                    self.names[index],
                    self.starts[index],
                    None if end < 0 else end,
                    _STATUSES[self.statuses[index]],
                    error,
                    error_type,
                    self.services.get(index),
                )
            )
        return nodes

    def nbytes(self) -> int:
        size = sum(
            sys.getsizeof(column)
            for column in (self.ids, self.parents, self.starts, self.ends, self.statuses)
        )
        size += (
            sys.getsizeof(self.names) + sys.getsizeof(self.errors) + sys.getsizeof(self.services)
        )
        return size + sum(sys.getsizeof(a) + sys.getsizeof(b) for a, b in self.errors.values())


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
