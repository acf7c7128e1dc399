"""Overdue, while it runs: one timer thread flags a task (or a run) that has run well past its
usual time, with one `task_overdue` (`pipeline_overdue`) event in its stream (issue 31).

Only spans of runs whose pipeline has a history are watched (their run mark carries what is
usual); the span thread adds a deadline to a heap and, at the span's end, takes it back out.
The flag and the end exclude each other under one lock, and the flag is published before
its deadline leaves the table, so a task's overdue event can never follow its end in the
stream: the ending thread either removes the deadline first (no flag), or finds it still
there and waits for the flag to be published before it publishes the end.
"""

from __future__ import annotations

import heapq
import os
import threading
import time
from typing import Final

from otelstream import _metrics
from otelstream._errors import report
from otelstream.events import PIPELINE_OVERDUE, TASK_OVERDUE, DataEvent
from otelstream.hubs import Hub

MAX_WATCHED: Final = 100_000
"""Deadlines kept at most (as many as spans may be open): beyond, a span is not watched."""


def threshold_ms(p90_ms: float, factor: float, margin_s: float) -> float:
    """How long a task whose usual p90 is `p90_ms` may run before it is overdue: past its
    p90 by the factor and by the margin both, so a short task's noise is never flagged and
    a long one's is judged by its own spread."""
    return max(p90_ms * factor, p90_ms + margin_s * 1000.0)


class _Deadline:
    __slots__ = ("expected_ms", "kind", "name", "p90_ms", "run_id", "span_id", "start_ns")

    def __init__(
        self,
        kind: str,
        run_id: str,
        span_id: int,
        name: str,
        start_ns: int,
        expected_ms: float,
        p90_ms: float,
    ) -> None:
        self.kind = kind
        self.run_id = run_id
        self.span_id = span_id
        self.name = name
        self.start_ns = start_ns
        self.expected_ms = expected_ms
        self.p90_ms = p90_ms


class OverdueWatch:
    """The deadlines of the watched open spans, and the daemon thread that flags them."""

    def __init__(self, hub: Hub, factor: float, margin_seconds: float) -> None:
        self.hub = hub
        self.factor = factor
        self.margin_seconds = margin_seconds
        self._open: dict[int, _Deadline] = {}  # span id -> its deadline, until flagged or ended
        self._heap: list[tuple[float, int]] = []  # (monotonic deadline, span id)
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False

    def watch(
        self,
        run_id: str,
        span_id: int,
        name: str,
        expected: tuple[float, float],
        *,
        run: bool = False,
    ) -> None:
        """On the span thread, at the start of a span whose usual duration is known."""
        if len(self._open) >= MAX_WATCHED or self._closed:
            return
        expected_ms, p90_ms = expected
        kind = PIPELINE_OVERDUE if run else TASK_OVERDUE
        deadline = _Deadline(kind, run_id, span_id, name, time.time_ns(), expected_ms, p90_ms)
        due = time.monotonic() + threshold_ms(p90_ms, self.factor, self.margin_seconds) / 1000
        with self._cond:
            self._open[span_id] = deadline
            first = not self._heap or due < self._heap[0][0]
            heapq.heappush(self._heap, (due, span_id))
            self._ensure_thread()
            if first:
                self._cond.notify()

    def ended(self, span_id: int) -> None:
        """On the span thread, before the span's end is published: it can no longer be flagged."""
        if span_id in self._open:  # read without the lock: a flag in progress holds it
            with self._cond:
                self._open.pop(span_id, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._open.clear()
            self._heap.clear()
            self._cond.notify()

    def _ensure_thread(self) -> None:
        """Under the lock: start the thread on first use (again in a forked child)."""
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, name="otelstream-overdue", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._heap:
                    self._cond.wait()
                    continue
                due, span_id = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                deadline = self._open.get(span_id)
                if deadline is not None:
                    self._flag(deadline)  # published first, under the lock: see the docstring
                    del self._open[span_id]

    def _flag(self, deadline: _Deadline) -> None:
        try:
            now = time.time_ns()
            event = DataEvent(
                deadline.kind,
                deadline.name,
                deadline.run_id,
                deadline.span_id,
                now,
                {"running_ms": round((now - deadline.start_ns) / 1e6, 3)},
                expected_ns=round(deadline.expected_ms * 1e6),
                expected_p90_ns=round(deadline.p90_ms * 1e6),
            )
            self.hub.publish(deadline.run_id, event)
            run = deadline.kind == PIPELINE_OVERDUE  # `otelstream.tasks.overdue`, for operators
            _metrics.overdue("pipeline" if run else "task", deadline.name if run else None)
        except Exception:
            report("otelstream overdue watch")
