"""A memory hub's run: its feed and its span tree, folded when read, sealed when over.

It is its own module because the run's state and its locking rules (the run's lock before
the hub's, never after) are one concept the hub only calls into; `memory.py` keeps the
hub's own bookkeeping (admission, retention, history, the runs list).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from otelstream.hubs._feed import Feed
from otelstream.hubs._run_tree import RunTree
from otelstream.settings import Settings


class _Run:
    """A run's feed (its replay buffer and readers) and its span tree, folded when read."""

    __slots__ = ("feed", "retained", "run_id", "seen", "settling", "status", "tree", "unfolded")

    def __init__(self, run_id: str, settings: Settings) -> None:
        self.run_id = run_id
        self.feed = Feed(run_id, settings.replay_events)
        self.tree = RunTree(max_spans=settings.replay_events)
        self.unfolded = 0
        """The newest entries of the feed not applied to `tree` yet: it is folded when read."""
        self.status = "running"
        self.retained = 0  # bytes kept once finished, counted against `max_retained_bytes`
        self.settling = False  # a fold is on its way on the hub's sealing thread
        self.seen: dict[str, None] = {}  # spans the OTLP receiver took (`first_seen`)

    @property
    def lock(self) -> threading.Lock:
        return self.feed.lock  # the run's state; taken before the hub's lock, never after

    def fold(self) -> RunTree:
        """Apply what the tree has not seen (run lock held): once per read, not per event.

        Folding projects an event recorded on the span thread (`SpanEvent`), which lets go
        of its span then; framing it is left to its first reader (or the run's end)."""
        # a running run's feed holds its `Event`s (a finished one's frames are folded already)
        entries: deque[Any] = self.feed.entries
        count, apply = self.unfolded, self.tree.apply
        for i in range(len(entries) - count, len(entries)):
            apply(entries[i])
        self.unfolded = 0
        return self.tree

    def settle(self) -> None:
        """Fold on the hub's sealing thread: the events are projected (and let go of their
        spans) outside the lock, which is then held only to apply them to the tree."""
        with self.lock:
            self.settling = False
            entries: list[Any] = list(self.feed.entries)[len(self.feed.entries) - self.unfolded :]
        for entry in entries:
            entry.span_id  # noqa: B018  (a `SpanEvent` projects itself when first read)
        with self.lock:
            if self.feed.sealed is None:
                self.fold()

    def seal(self) -> int:
        """The run is over (on the hub's sealing thread): fold it, keep its frames only, its
        tree in columns; returns the bytes kept."""
        feed = self.feed
        for entry in list(feed.entries):  # framed outside the lock: readers never wait for it
            entry.sse  # noqa: B018
        with feed.lock:
            self.fold()
            return feed.shrink() + self.tree.seal()
