"""The one fan-out engine of every hub: its readers' cursors into a run's replay buffer
(`Feed`, in `_feed.py`) and the rules for cutting a reader.

Readers do not own queues: a `FeedSubscription` is a cursor into the feed, so being behind
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
from typing import Self

from otelstream import _metrics
from otelstream.events import Event
from otelstream.events._notices import EVENTS_LOST, STREAM_OVERFLOW
from otelstream.events._wire import notice, notice_frame
from otelstream.hubs._contract import SubscriberLagged
from otelstream.hubs._entries import Entry, Frame, Notice, SharedChunk, decode_frame
from otelstream.hubs._feed import _END, _EVICTED, _MORE, Feed
from otelstream.hubs._wake import Subscriber

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


__all__ = ["FeedSubscription", "Frame"]
