"""A finished run's span tree kept small: its nodes as columns, read back by `snapshot`."""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable

from otelstream.hubs._span_node import SpanNode

_STATUSES = ("running", "success", "error", "cancelled")


class SealedNodes:
    """A finished run's span nodes as columns: ids, times and status codes in arrays, names
    interned (tasks share a few names), errors only for the spans that have one."""

    __slots__ = (
        "ends",
        "errors",
        "ids",
        "names",
        "parents",
        "services",
        "starts",
        "statuses",
        "usual",
    )

    def __init__(self, nodes: Iterable[SpanNode]) -> None:
        self.ids, self.parents = array("Q"), array("Q")  # span id 0 is invalid: 0 is "none"
        self.starts, self.ends = array("q"), array("q")  # -1: not ended
        self.statuses = array("b")
        self.names: list[str] = []
        self.errors: dict[int, tuple[str | None, str | None]] = {}
        self.services: dict[int, str] = {}  # only the spans of another service
        # only the spans of a pipeline with a history: (expected, overdue)
        self.usual: dict[int, tuple[tuple[int, int | None] | None, bool]] = {}
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
            if node.expected is not None or node.overdue:
                self.usual[index] = (node.expected, node.overdue)

    def nodes(self) -> list[SpanNode]:
        nodes = []
        for index, span_id in enumerate(self.ids):
            end, parent = self.ends[index], self.parents[index]
            error, error_type = self.errors.get(index, (None, None))
            expected, overdue = self.usual.get(index, (None, False))
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
                    expected,
                    overdue,
                )
            )
        return nodes

    def nbytes(self) -> int:
        size = sum(
            sys.getsizeof(column)
            for column in (self.ids, self.parents, self.starts, self.ends, self.statuses)
        )
        size += sum(sys.getsizeof(d) for d in (self.names, self.errors, self.services, self.usual))
        size += len(self.usual) * 120  # a tuple of two ints (or none) and a flag
        return size + sum(sys.getsizeof(a) + sys.getsizeof(b) for a, b in self.errors.values())
