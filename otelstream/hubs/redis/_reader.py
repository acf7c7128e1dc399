"""The Redis hub's reader: it feeds the shared fan-out engine (`hubs/_fanout.py`) with what
Redis holds, one `Feed` (`hubs/_feed.py`) per run that this process has readers of.

One XREAD per process covers every watched run (one Redis); in Redis Cluster a
command cannot span hash slots, so the reader sends one XREAD per run in a
pipeline, which redis-py groups per node, and polls instead of blocking. Each
entry's JSON becomes a `Frame` as it is, never parsed or serialised again. The
engine does the rest: cursors, cuts, wake-ups. A run's end finishes its feed; a
loss marker or an outage fails it (`events_lost`) and the run is read afresh by
whoever subscribes next.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Final

from otelstream._errors import report
from otelstream.events._notices import EVENTS_LOST
from otelstream.events._wire import ends_run, frame
from otelstream.hubs._entries import Frame
from otelstream.hubs._feed import Feed
from otelstream.hubs.redis._codec import marker_seq, stream_key
from otelstream.hubs.redis._loop import UNREACHABLE, IOLoop, stopping, wait_within

READ_COUNT: Final = 1_000
"""Entries per stream and XREAD."""
BLOCK_MS: Final = 2_000
"""A blocking XREAD returns at least this often; a new watch interrupts it (CLIENT UNBLOCK)."""
_POLL_S: Final = (0.002, 0.05)
"""Cluster: the pause between polls that found nothing, growing from the first to the second."""
_IDLE_S: Final = 5.0
"""A feed nobody has read for this long is let go."""
RUNS: Final = "runs"
"""The watch of the lifecycle stream (`subscribe_runs`)."""


class _Watch:
    """One watched feed: where this process reads its stream from."""

    __slots__ = ("base", "cursor", "done", "feed", "key", "terminal", "touched")

    def __init__(self, feed: Feed, key: str, after: int, terminal: bool) -> None:
        self.feed = feed
        self.key = key.encode()
        self.base = after  # loss markers at or before it were told before
        self.cursor: bytes | str = f"{after}-0"
        self.done = False  # finished or failed: read no more
        self.terminal = terminal  # whether a `pipeline_completed` ends it (not the runs stream)
        self.touched = time.monotonic()


class Reader:
    def __init__(self, io: IOLoop, prefix: str, replay_events: int, lifecycle: str) -> None:
        self.io, self.prefix, self.replay_events = io, prefix, replay_events
        self.lifecycle = lifecycle
        self._watches: dict[str, _Watch] = {}
        self._lock = threading.Lock()
        self._gen = 0  # bumped when the set of watched streams changes
        self._reading_gen = -1
        self._reading = False
        self._unblocking = False
        self._changed = asyncio.Event()
        io.tasks.append(self.run)
        io.on_down.append(lambda: self.fail_all("Redis cannot be reached"))
        io.on_fork.append(self._forked)

    def _forked(self) -> None:
        self._watches.clear()
        self._changed = asyncio.Event()

    # -- from any thread ----------------------------------------------------------------------

    def feed(self, run_id: str, after: int) -> Feed:
        """The run's feed in this process, watched from `after` on if it is new."""
        created = False
        with self._lock:
            watch = self._watches.get(run_id)
            if watch is None or watch.feed.failure is not None:
                key = self.lifecycle if run_id == RUNS else stream_key(self.prefix, run_id)
                feed = Feed(run_id, self.replay_events, base=after)
                watch = self._watches[run_id] = _Watch(feed, key, after, run_id != RUNS)
                self._gen += 1
                created = True
            watch.touched = time.monotonic()
        if created:
            self.io.ensure().call_soon_threadsafe(self._watches_changed)
        return watch.feed

    def fail(self, run_id: str, message: str) -> None:
        """End the run's readers here (`events_lost`); its next reader starts afresh."""
        with self._lock:
            watch = self._watches.pop(run_id, None)
            self._gen += 1
        if watch is not None:
            watch.feed.fail(EVENTS_LOST, message)

    def fail_all(self, message: str) -> None:
        with self._lock:
            watches, self._watches = list(self._watches.values()), {}
            self._gen += 1
        for watch in watches:
            watch.feed.fail(EVENTS_LOST, message)

    def subscriber_count(self, run_id: str | None) -> int:
        with self._lock:
            watches = self._watches.values() if run_id is None else [self._watches.get(run_id)]
            return sum(w.feed.subscriber_count() for w in watches if w is not None)

    # -- on the I/O loop ----------------------------------------------------------------------

    async def backfill(self, run_id: str, feed: Feed, after: int) -> None:
        """What a reader entering now is owed, read at once rather than by the next XREAD: the
        entries between `after` and the feed's oldest (a late reader of a watched run), and
        all there is past the feed's newest, so it starts where a memory hub's would."""
        # on the query pool: the reader's one connection may be blocked in XREAD for seconds,
        # and a thousand viewers entering one run must not queue behind it one by one
        key = self.lifecycle if run_id == RUNS else stream_key(self.prefix, run_id)
        query = self.io.query
        upto = feed.first_seq - 1
        if after < upto:
            entries = await query.xrange(key, f"({after}-0", f"{upto}-0")
            feed.backfill([f for f in map(_frame, entries) if f is not None])
        with self._lock:
            watch = self._watches.get(run_id)
        if watch is not None and watch.feed is feed and not watch.done:
            entries = await query.xrange(key, f"({feed.last_seq}-0", "+", READ_COUNT)
            entries = [
                (_bytes(i), {_bytes(k): _bytes(v) for k, v in f.items()}) for i, f in entries
            ]
            self._apply([(watch.key, entries)], {watch.key: (run_id, watch)})

    async def run(self, io: IOLoop) -> None:
        delay = 0.0
        while not stopping():
            active = self._active()
            if not active:
                self._changed.clear()
                await wait_within(_IDLE_S, self._changed.wait())
                continue
            try:
                found = await (self._poll(active) if io.cluster else self._block(active))
            except UNREACHABLE as exc:
                io.reader_id = None
                io.down(exc)  # ends the streams of every watched run
                await asyncio.sleep(_POLL_S[1])
                continue
            except Exception:
                report("RedisHub: reading events from Redis")
                await asyncio.sleep(_POLL_S[1])
                continue
            io.up()
            self._apply(found, active)
            if io.cluster:  # nothing new: wait a little longer each time, or for a new watch
                delay = 0.0 if found else min(max(delay * 2, _POLL_S[0]), _POLL_S[1])
                if delay:
                    self._changed.clear()
                    await wait_within(delay, self._changed.wait())

    def _active(self) -> dict[bytes, tuple[str, _Watch]]:
        """The streams to read now; feeds nobody has read for a while are let go."""
        now = time.monotonic()
        with self._lock:
            for run_id, watch in list(self._watches.items()):
                idle = now - watch.touched > _IDLE_S
                if idle and watch.feed.subscriber_count() == 0:
                    del self._watches[run_id]
                    self._gen += 1
            self._reading_gen = self._gen
            return {w.key: (r, w) for r, w in self._watches.items() if not w.done}

    async def _block(self, active: dict[bytes, tuple[str, _Watch]]) -> list[Any]:
        streams: dict[Any, Any] = {key: watch.cursor for key, (_, watch) in active.items()}
        self._reading = True
        try:
            found = await self.io.reader.xread(streams, count=READ_COUNT, block=BLOCK_MS)
        finally:
            self._reading = False
        return found or []

    async def _poll(self, active: dict[bytes, tuple[str, _Watch]]) -> list[Any]:
        async with self.io.reader.pipeline(transaction=False) as pipe:
            for key, (_, watch) in active.items():
                pipe.xread({key: watch.cursor}, count=READ_COUNT)
            replies: list[Any] = await pipe.execute()
        return [stream for reply in replies if reply for stream in reply]

    def _apply(self, found: list[Any], active: dict[bytes, tuple[str, _Watch]]) -> None:
        """Entries for the watches they were read for, if those are still the runs' watches."""
        for key, entries in found:
            run_id, watch = active.get(key, ("", None))
            if watch is None or self._watches.get(run_id) is not watch:
                continue  # let go meanwhile; a new watch reads from its own cursor
            frames: list[Any] = []
            lost = False
            for entry_id, fields in entries:
                watch.cursor = entry_id
                marker = marker_seq(entry_id)
                if marker is not None:
                    lost = marker > watch.base  # events after `marker` never reached Redis
                    if lost:
                        break
                    continue
                seq, data = int(entry_id.partition(b"-")[0]), fields[b"e"]
                frames.append(Frame(seq, frame(seq, data)))
                if watch.terminal and ends_run(data):
                    watch.done = True
                    break
            watch.feed.extend(frames)
            if lost:
                self.fail(run_id, "events of this run were lost")
            elif watch.done:
                watch.feed.finish()

    def _watches_changed(self) -> None:
        self._changed.set()
        if self._reading and not self._unblocking and not self.io.cluster:
            asyncio.get_running_loop().create_task(self._unblock())

    async def _unblock(self) -> None:
        self._unblocking = True
        try:
            for _ in range(200):
                if not self._reading or self._reading_gen == self._gen:
                    return
                reader_id = self.io.reader_id
                if reader_id is not None and await self.io.query.client_unblock(reader_id):
                    return
                await asyncio.sleep(0.002)  # its XREAD is on the way: unblock it once it blocks
        except Exception:
            return
        finally:
            self._unblocking = False


def _frame(entry: tuple[str, dict[str, str]]) -> Frame | None:
    """An entry read on the query pool (its replies decoded: the JSON was stored as UTF-8)."""
    entry_id, fields = entry
    if marker_seq(entry_id) is not None:
        return None
    seq = int(entry_id.partition("-")[0])
    return Frame(seq, frame(seq, fields["e"].encode()))


def _bytes(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else text
