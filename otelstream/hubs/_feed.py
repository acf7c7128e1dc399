"""A run's replay buffer (`Feed`): the half of the fan-out engine (`_fanout.py`) that
publishers write into and every reader of the run reads from.

A `Feed` holds a run's newest events in order of seq, and which event loops have readers:
publishers wake each of those at most once per burst (`LoopWaker`). It keeps the order of a
run's end (state before notice, `end`), seals a finished run's frames (`SealedFrames`), and
offers a chunk joined for one reader to the others at the same cursor (`SharedChunk`). What a
reader takes from it, and when it is cut, is its cursor's, `FeedSubscription` in `_fanout.py`.
The memory hub appends to feeds; the Redis hub's reader extends them with what it read.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable

from otelstream.events._notices import EVENTS_LOST
from otelstream.hubs._entries import Entry, SealedFrames, SharedChunk
from otelstream.hubs._wake import LoopWaker, Subscriber


class Feed:
    """One run's replay buffer and its readers; every method is safe from any thread.

    Seqs in a feed are contiguous: the oldest kept is `last_seq - len(entries) + 1`.
    `add` is for a caller that holds `lock` and has more of its own state to change
    (it then calls `wake`); `append` and `extend` take the lock themselves.
    """

    __slots__ = (
        "entries",
        "failure",
        "finished",
        "key",
        "last_seq",
        "lock",
        "readers",
        "sealed",
        "shared",
        "wakers",
    )

    def __init__(self, key: str, max_events: int, base: int = 0) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.entries: deque[Entry] = deque(maxlen=max_events)
        self.last_seq = base
        self.finished = False
        self.failure: tuple[str, str] | None = None
        self.readers = 0  # attached subscriptions, all loops together
        self.wakers: tuple[LoopWaker, ...] = ()  # one per loop with readers, read without the lock
        self.sealed: SealedFrames | None = None  # the frames only, once the run is over
        self.shared: SharedChunk | None = None  # the newest joined chunk, for one loop turn

    @property
    def first_seq(self) -> int:
        return self.last_seq - self._kept() + 1

    def _kept(self) -> int:
        return len(self.entries) if self.sealed is None else len(self.sealed)

    # -- writing ------------------------------------------------------------------------------

    def add(self, entry: Entry, *, final: bool = False) -> int:
        """Lock held: give `entry` the next seq and keep it (`final`: it is the terminal event,
        so readers end once they have it); the caller then calls `wake`."""
        seq = entry.seq = self.last_seq + 1
        self.entries.append(entry)
        self.last_seq = seq
        if final:
            self.finished = True
        return seq

    def end(self, entry: Entry, record: Callable[[], None]) -> int:
        """Lock held: the run's terminal event. State before notice, the rule of every hub:
        `record()` writes the run's end wherever it is read (its status, the runs list, the
        runs stream) and only then is the event kept where a reader can take it, so a reader
        that has `pipeline_completed` never reads the run as running. The Redis hub keeps the
        same order in Redis itself (its end is stored and retired before the event is added
        to the run's stream, see `hubs/redis/_codec.py`); this engine's readers then see it."""
        record()
        return self.add(entry, final=True)

    def wake(self) -> None:
        """Wake every loop with readers: one flag check each, a call only when none is pending."""
        for waker in self.wakers:
            waker.notify()

    def append(self, entry: Entry) -> int:
        with self.lock:
            seq = self.add(entry)
        self.wake()
        return seq

    def extend(self, entries: Iterable[Entry]) -> None:
        """Entries that carry their seq (from another process): older ones are skipped, and a
        gap empties the buffer, so that a cursor from before it is cut rather than misled."""
        with self.lock:
            kept = self.entries
            for entry in entries:
                seq = entry.seq
                if seq <= self.last_seq:
                    continue
                if seq != self.last_seq + 1:
                    kept.clear()
                kept.append(entry)
                self.last_seq = seq
        self.wake()

    def backfill(self, entries: list[Entry]) -> None:
        """Older entries, ending right before the oldest kept (a late reader's replay)."""
        with self.lock:
            kept = self.entries
            room = (kept.maxlen or 0) - len(kept)
            first = self.first_seq
            for entry in reversed(entries):
                if room <= 0 or entry.seq != first - 1:
                    break
                kept.appendleft(entry)
                first, room = entry.seq, room - 1

    def share(self, chunk: SharedChunk) -> None:
        """Offer a chunk just joined to the readers at its cursor, for this turn of the
        caller's loop (the readers one wake-up resumed run in it): so a run holds at most one
        chunk, and only for that long (on other loops, readers join their own)."""
        with self.lock:
            if self.sealed is None:
                self.shared = chunk
        asyncio.get_running_loop().call_soon(self._unshare, chunk)

    def _unshare(self, chunk: SharedChunk) -> None:
        with self.lock:
            if self.shared is chunk:
                self.shared = None

    def finish(self) -> None:
        """The terminal event is in: readers end once they have it."""
        with self.lock:
            self.finished = True
        self.wake()

    def fail(self, type: str = EVENTS_LOST, message: str = "") -> None:
        """End every reader, after what it can still be given, with a notice saying why."""
        with self.lock:
            if self.failure is None:
                self.failure = (type, message)
        self.wake()

    def shrink(self) -> int:
        """Lock held, run over: keep its frames only (`SealedFrames`); returns the bytes kept."""
        if self.sealed is None:
            self.sealed = SealedFrames(self.entries, self.last_seq)
            self.entries = deque(maxlen=self.entries.maxlen)
            self.shared = None
        return self.sealed.nbytes()

    # -- reading ------------------------------------------------------------------------------

    def subscriber_count(self) -> int:
        return self.readers

    def _attach(self, reader: Subscriber) -> None:
        """O(1): the reader joins its loop's waker in place; the tuple of wakers changes only
        when a loop gets its first reader (publishers read it without the lock)."""
        with self.lock:
            self.readers += 1
            for waker in self.wakers:
                if waker.loop is reader.loop:
                    waker.subscribers[reader] = None
                    return
            waker = LoopWaker(reader.loop)
            waker.subscribers[reader] = None
            self.wakers = (*self.wakers, waker)

    def _detach(self, reader: Subscriber) -> None:
        """O(1), as `_attach`; a loop's waker goes when its last reader does."""
        with self.lock:
            for waker in self.wakers:
                if waker.loop is reader.loop:
                    if waker.subscribers.pop(reader, False) is None:
                        self.readers -= 1
                    if not waker.subscribers:
                        self.wakers = tuple(w for w in self.wakers if w is not waker)
                    return

    def _take(
        self, after: int, first: bool, chunk_bytes: int | None = None
    ) -> tuple[list[Entry], int, int]:
        """(entries after `after`, the seq of the last, what follows: `_MORE`, `_END`,
        `_FAILED`, `_EVICTED`); a sealed feed's entries are slices of about `chunk_bytes`."""
        with self.lock:
            pending = self.last_seq - after
            shared = self.shared
            if (
                shared is not None
                and shared.after == after
                and chunk_bytes is not None
                and len(shared.sse) <= chunk_bytes
            ):  # a reader at this cursor joined it already, in this loop turn
                return [shared], shared.seq, _MORE
            if pending > 0:
                kept = self._kept()
                if pending > kept:
                    if not first:
                        return [], after, _EVICTED  # its position is gone: cut, it may resume
                    pending = kept  # a late reader starts from the oldest kept
                if self.sealed is not None:
                    return self.sealed.last(pending, chunk_bytes), self.last_seq, _MORE
                batch = list(itertools.islice(reversed(self.entries), pending))
                batch.reverse()
                return batch, self.last_seq, _MORE
            if self.failure is not None:
                return [], after, _FAILED
            return [], after, _END if self.finished else _MORE


_MORE, _END, _FAILED, _EVICTED = 0, 1, 2, 3


__all__ = ["Feed"]
