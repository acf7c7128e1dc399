"""The runs list: a summary of each run a hub keeps, newest first, and its lifecycle events.

Shared by the hubs that keep runs in this process. A summary holds the run's
start and end events themselves, not fields read from them: the span
processor publishes events whose fields are projected only when first read,
and that read belongs on the reader's side (a `GET /runs`, a lifecycle frame),
never on the thread that ends a span.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from otelstream.events import RUN_ENDED, RUN_STARTED, Event
from otelstream.events._wire import run_summary


class RunEvent(Event):
    """`run_started` / `run_ended` on the runs stream: a run's summary, with its own seq there."""

    __slots__ = ("end", "entry")

    def __init__(self, type: str, entry: _Entry, end: Event | None = None) -> None:
        super().__init__(type, "", entry.run_id, 0, None, 0)
        self.entry = entry
        self.end = end  # the run as it stood then: a replayed run_started still says running

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "seq": self.seq, **self.entry.summary(self.end)}


class _Entry:
    __slots__ = ("ended", "number", "run_id", "started")

    def __init__(self, number: int, run_id: str, started: Event) -> None:
        self.number = number  # the order of starts in this list: the cursor
        self.run_id = run_id
        self.started = started
        self.ended: Event | None = None

    def summary(self, ended: Event | None) -> dict[str, Any]:
        started = self.started
        if ended is None:
            return run_summary(self.run_id, started.name, started.time_ns)
        return run_summary(
            self.run_id,
            started.name,
            started.time_ns,
            ended.status or "success",
            ended.duration_ns,
            ended.error_type,
            ended.errors_logged,
        )


class RunsList:
    """Summaries by run, in start order; the hub adds, ends and forgets runs as it keeps them.

    Bounded by the hub's own bounds: a run is forgotten here when the hub evicts it.
    """

    def __init__(self) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def started(self, run_id: str, event: Event) -> RunEvent:
        with self._lock:
            self._count += 1
            entry = self._entries[run_id] = _Entry(self._count, run_id, event)
        return RunEvent(RUN_STARTED, entry)

    def ended(self, run_id: str, event: Event) -> RunEvent | None:
        with self._lock:
            entry = self._entries.get(run_id)
        if entry is None:
            return None
        entry.ended = event
        return RunEvent(RUN_ENDED, entry, event)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._entries.pop(run_id, None)

    def page(
        self, pipeline: str | None, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to `limit` summaries, newest first, older than `cursor`; and the next cursor."""
        before = parse_cursor(cursor)
        with self._lock:
            entries = list(self._entries.values())
        runs: list[dict[str, Any]] = []
        last = None
        for entry in reversed(entries):
            if before is not None and entry.number >= before:
                continue
            if pipeline is not None and entry.started.name != pipeline:
                continue
            summary = entry.summary(entry.ended)
            if status is not None and summary["status"] != status:
                continue
            if len(runs) == limit:
                return runs, None if last is None else str(last)
            runs.append(summary)
            last = entry.number
        return runs, None


def parse_cursor(cursor: str | None) -> int | None:
    """A cursor from `RunPage.next_cursor`; ValueError for anything else."""
    if cursor is None or cursor == "":
        return None
    if not cursor.isdigit():
        raise ValueError(f"not a cursor of this list: {cursor!r}")
    return int(cursor)
