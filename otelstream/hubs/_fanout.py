"""The one fan-out engine of every hub: a run's replay buffer, its readers' cursors, their
wake-ups and the rules for cutting a reader.

A `Feed` holds a run's newest events (its replay buffer) in order of seq. Readers
do not own queues: a `FeedSubscription` is a cursor into the feed, so being behind
costs nothing until the buffer evicts the cursor's position. Publishers wake each
event loop that has readers at most once per burst (`LoopWaker`), and a woken reader
takes everything after its cursor as one joined chunk of frames, each framed once
for every reader; readers at the same cursor (a burst wakes them all in one loop turn)
share one chunk, joined once (`SharedChunk`), so a reader costs the same whatever the
number of events it is given. The memory hub appends to feeds; the Redis hub's reader extends
them with what it read, so both hubs share every rule here.

A reader is cut only for a real reason: its cursor fell out of the buffer
(`stream_overflow`) or the feed failed (`events_lost`); the send timeout that cuts
a client who stops reading lives in the SSE response, where the socket is.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Self

from otelstream import _metrics
from otelstream.events import Event
from otelstream.events._notices import EVENTS_LOST, STREAM_OVERFLOW
from otelstream.events._wire import notice, notice_frame
from otelstream.hubs._contract import SubscriberLagged
from otelstream.hubs._entries import Entry, Frame, Notice, SealedFrames, SharedChunk, decode_frame
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

    def subscribe(self, after: int = 0) -> FeedSubscription:
        return FeedSubscription(self, after)

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

MAX_CHUNK_BYTES = 1 << 20
"""What one write to a client holds at most: a stalled client's socket buffer holds no more."""


class FeedSubscription:
    """One reader of one feed, used on the event loop it was entered on."""

    def __init__(self, feed: Feed, after: int) -> None:
        self.feed = feed
        self.last_seq = after
        self._first = True
        self._reader: Subscriber | None = None
        self._ended = False

    async def __aenter__(self) -> Self:
        self._reader = Subscriber(asyncio.get_running_loop())
        self.feed._attach(self._reader)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._reader is not None:
            self.feed._detach(self._reader)
            self._reader = None

    async def next_frames(self, timeout: float, max_bytes: int = MAX_CHUNK_BYTES) -> bytes | None:
        """The frames after `last_seq` as one chunk of `max_bytes` at most (a frame alone may
        be more), waiting up to `timeout` for one; `b""` when the time ran out, None once the
        stream is over. A cut ends with its notice."""
        entries, state = await self._next(timeout, max_bytes)
        if entries:
            frames = [entry.sse for entry in entries]
            size = 0
            for count, frame in enumerate(frames):
                size += len(frame)
                if size > max_bytes and count:  # the rest waits for the next call
                    self.last_seq = entries[count - 1].seq
                    return b"".join(frames[:count])
            if len(frames) == 1:
                return frames[0]
            chunk = b"".join(frames)
            after, upto = entries[0].seq - 1, entries[-1].seq
            if upto - after == len(entries) and self.feed.readers > 1:  # one event an entry
                self.feed.share(SharedChunk(after, upto, chunk))
            return chunk
        if state == _MORE:
            return b""
        if state == _END:
            return None
        type_, reason, message = self._cut(state)
        return notice_frame(type_, self.feed.key, self.last_seq, reason=reason, message=message)

    async def next_events(self, timeout: float) -> list[Event] | None:
        """The same, as events, for `otelstream.testing.next_batch` (not in the `Subscription`
        contract: streams send frames): `[]` when the time ran out, None when the run is over;
        raises `SubscriberLagged` where `next_frames` would send `stream_overflow`."""
        entries, state = await self._next(timeout)
        if entries:
            return [entry if isinstance(entry, Event) else decode_frame(entry) for entry in entries]
        if state == _MORE:
            return []
        if state == _END:
            return None
        if state == _EVICTED:
            _metrics.stream_cut(STREAM_OVERFLOW)
            raise SubscriberLagged(self.last_seq)
        type_, reason, message = self._cut(state)
        return [Notice(notice(type_, self.feed.key, self.last_seq, reason=reason, message=message))]

    async def _next(
        self, timeout: float, chunk_bytes: int | None = None
    ) -> tuple[list[Entry], int]:
        reader = self._reader
        if reader is None:
            raise RuntimeError("use the subscription as `async with hub.subscribe(...)`")
        if self._ended:
            return [], _END
        waited = False
        while True:
            entries, self.last_seq, state = self.feed._take(self.last_seq, self._first, chunk_bytes)
            self._first = False
            if entries:
                return entries, _MORE
            if state != _MORE:
                self._ended = True
                return [], state
            if waited:
                return [], _MORE
            waited = not await reader.wait(timeout)

    def _cut(self, state: int) -> tuple[str, str, str | None]:
        """Why the stream ends before its run (once a subscription), counted for operators."""
        if state == _EVICTED:
            _metrics.stream_cut(STREAM_OVERFLOW)
            return STREAM_OVERFLOW, "evicted", None
        failure = self.feed.failure or (EVENTS_LOST, "")
        _metrics.stream_cut(failure[0])
        return failure[0], failure[0], failure[1] or None


__all__ = ["Feed", "FeedSubscription", "Frame"]
