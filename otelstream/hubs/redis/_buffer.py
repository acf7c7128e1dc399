"""The Redis writer's buffer: what `publish` appends to from any thread, bounded in bytes, and
taken from in batches by the writer on the I/O loop.

An event is weighed by what it keeps alive while it waits (`Event.weight`), without projecting
it: projection is the reader's work, never the span thread's. Past `redis_buffer_bytes` (or the
optional `redis_buffer_events`) `put` refuses the event: the hub counts it lost.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Final

from otelstream.events import PIPELINE_COMPLETED, PIPELINE_STARTED, Event
from otelstream.hubs._wake import Wakeup
from otelstream.hubs.redis._loop import IOLoop

BATCH: Final = 1_000
"""Events per pipelined round trip."""

Item = tuple[str, Event]


class Buffer:
    """`put` from any thread; the rest on the I/O loop. `wake` is set when there is work."""

    def __init__(self, io: IOLoop, capacity: int | None, capacity_bytes: int) -> None:
        self.io = io
        self.capacity = capacity or 2**62  # events: a bound only when one is set
        self.capacity_bytes = capacity_bytes
        self.bytes = 0  # the weight of what is buffered
        self.items: deque[tuple[str, Event, int] | asyncio.Future[None]] = deque()
        self.wake = asyncio.Event()
        self._lock = threading.Lock()
        self._kick: _Kick | None = None  # wakes the writer on the I/O loop, once per burst
        io.on_fork.append(self._forked)

    def _forked(self) -> None:
        self.items.clear()
        self.bytes = 0
        self.wake = asyncio.Event()
        self._kick = None

    def __len__(self) -> int:
        return len(self.items)

    def put(self, run_id: str, event: Event) -> bool:
        """Append and wake the writer (at most one wake-up pending); False when the event would
        take the buffer past `capacity_bytes` (or `capacity` events)."""
        loop = self.io.ensure()
        size = event.weight()
        with self._lock:
            if self.bytes + size > self.capacity_bytes or len(self.items) >= self.capacity:
                return False
            self.bytes += size
        self.items.append((run_id, event, size))
        kick = self._kick
        if kick is None or kick.loop is not loop:  # the first put, or the first after a fork
            kick = self._kick = _Kick(loop, self.wake)
        kick.notify()
        return True

    def barrier(self, future: asyncio.Future[None]) -> None:
        """I/O loop: `future` is done once what was put before it is written (or given up)."""
        self.items.append(future)
        self.wake.set()

    def take(self) -> tuple[list[Item], list[asyncio.Future[None]]]:
        """The next batch. It ends before a run's start that follows another run's end: that
        run's place is given back (`retire`) before the next is asked for (`admit`)."""
        batch: list[Item] = []
        barriers: list[asyncio.Future[None]] = []
        items, ended, taken = self.items, False, 0
        while items and len(batch) < BATCH:
            item = items[0]
            if isinstance(item, asyncio.Future):
                barriers.append(item)
            else:
                kind = item[1].type
                if ended and kind == PIPELINE_STARTED:
                    break
                ended = ended or kind == PIPELINE_COMPLETED
                batch.append((item[0], item[1]))
                taken += item[2]
            items.popleft()
        with self._lock:
            self.bytes -= taken
        return batch, barriers

    def release(self) -> None:
        """While Redis is down, `flush` stops waiting for the buffer."""
        for item in self.items:
            if isinstance(item, asyncio.Future) and not item.done():
                item.set_result(None)


class _Kick(Wakeup):
    """The shared coalescing wake-up, setting the writer's event on the I/O loop."""

    __slots__ = ("event",)

    def __init__(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        super().__init__(loop)
        self.event = event

    def _wake(self) -> None:
        self.scheduled = False
        self.event.set()
