"""Waking readers on their own event loops from any thread: one wake-up per burst, not per event.

Shared by every hub. `call_soon_threadsafe` costs more than a span (a self-pipe
write and a GIL hand-off), so a wake-up is scheduled only when none is pending.
"""

from __future__ import annotations

import asyncio
import contextlib


class Wakeup:
    """The coalescing itself: `notify` from any thread, `_wake` later on `loop`."""

    __slots__ = ("loop", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.scheduled = False

    def notify(self) -> None:
        """Any thread. The flag is racy on purpose: a lost race costs a spare wake-up only."""
        if not self.scheduled:
            self.scheduled = True
            # A closed loop raises RuntimeError: its readers will never read again.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self.scheduled = False


class Subscriber(Wakeup):
    """One reader, woken on its own loop."""

    __slots__ = ("_ready", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._ready = False
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        self.scheduled = False
        self._ready = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float) -> bool:
        """True when woken, False when `timeout` seconds passed first."""
        if not self._ready:
            waiter = self._waiter = self.loop.create_future()
            timer = self.loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        woken, self._ready = self._ready, False
        return woken


class LoopWaker(Wakeup):
    """Every subscriber of one run on one loop: an event costs the publisher one flag check
    per loop, not one call per subscriber.

    `subscribers` is changed in place (O(1) to gain or lose one) and only on `loop`, where
    `_wake` reads it too; an insertion-ordered dict, so readers are woken oldest first."""

    __slots__ = ("subscribers",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.subscribers: dict[Subscriber, None] = {}

    def _wake(self) -> None:
        self.scheduled = False
        for subscriber in tuple(self.subscribers):  # a copy: waking one may end another
            subscriber._wake()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
