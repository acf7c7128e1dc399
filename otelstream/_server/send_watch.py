"""A deadline for each write to a client, without a timer for each write.

`asyncio.timeout` around a write arms and cancels a timer every time: about 5 µs a
write, paid by every subscriber for every chunk, though almost every write is
accepted at once (uvicorn waits only when the socket's buffer is full). A stream's
`SendWatch` notes when its write began and keeps at most one timer, armed by the
first write (or one with a shorter limit, as a shutdown's last words) and moved on,
when it fires, to the deadline of the write then in progress (none: it is not armed
again until the next write). A write still in
progress at its deadline is cancelled and raises `TimeoutError`, as
`asyncio.timeout` would.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Message, Send

_EARLY_S = 0.002
"""How early a loop may run a timer (its clock's resolution): still counted as due."""


class SendWatch:
    """The write deadlines of one stream's task; used on its event loop only."""

    __slots__ = ("_armed", "_cancelling", "_fired", "_limit", "_loop", "_since", "_task", "_timer")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task
        self._loop = task.get_loop()
        self._since: float | None = None  # when the write in progress began
        self._limit = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._armed = 0.0  # when the timer fires
        self._fired = False
        self._cancelling = 0

    async def send(self, send: Send, message: Message, limit: float) -> None:
        """`send(message)`, accepted within `limit` seconds or `TimeoutError`."""
        since = self._since = self._loop.time()
        self._limit = limit
        if self._timer is None or since + limit < self._armed:  # none, or a later one
            self._arm(since + limit)
        try:
            await send(message)
        except asyncio.CancelledError:
            if self._fired:
                self._fired = False
                if self._task.uncancel() <= self._cancelling:  # ours alone, not a disconnect
                    raise TimeoutError from None
            raise
        finally:
            self._since = None

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(due, self._check)
        self._armed = due

    def close(self) -> None:
        """The stream is over: its timer goes with it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        since = self._since
        if since is None:
            return  # no write in progress: the next one arms the timer
        due = since + self._limit
        if self._loop.time() >= due - _EARLY_S:
            self._fired = True
            self._cancelling = self._task.cancelling()
            self._task.cancel()
        else:
            self._arm(due)


__all__ = ["SendWatch"]
