"""Cancel requests between processes: `DELETE /runs/{id}` on any worker reaches the runner
that runs it, over one pub/sub subscription per process (see `_registry.py`: `cancel`). A
request sent while the subscription was down is found in the run's hash when it is back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Final

from otelstream._errors import report
from otelstream.hubs.redis._codec import meta_key
from otelstream.hubs.redis._loop import UNREACHABLE, IOLoop, stopping

_BACKOFF_S: Final = 0.25


class CancelListeners:
    """The process's listeners, called on the I/O thread with each run id asked to cancel."""

    def __init__(
        self, io: IOLoop, channel: str, prefix: str, running: Callable[[], list[str]]
    ) -> None:
        self.channel = channel
        self._prefix = prefix
        self._running = running  # the runs started here that have not ended
        self._listeners: list[Callable[[str], bool]] = []
        io.tasks.append(self._listen)

    def add(self, listener: Callable[[str], bool]) -> Callable[[], None]:
        """Returns the function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    async def _listen(self, io: IOLoop) -> None:
        """Subscribed again after an outage; a cancel sent meanwhile is in the run's hash."""
        while not stopping():
            pubsub: Any = None
            try:
                pubsub = await io.pubsub()
                await pubsub.subscribe(self.channel)
                await self._missed(io)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._cancelled(str(message["data"]))
            except UNREACHABLE:
                await asyncio.sleep(_BACKOFF_S)
            except Exception:
                report("RedisHub: listening for cancel requests")
                await asyncio.sleep(_BACKOFF_S)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()

    async def _missed(self, io: IOLoop) -> None:
        """Cancels asked for while this process was not subscribed: the runs' hashes say."""
        runs = self._running()
        if not runs:
            return
        async with io.query.pipeline(transaction=False) as pipe:
            for run_id in runs:
                pipe.hget(meta_key(self._prefix, run_id), "cancel")
            flags: list[Any] = await pipe.execute()
        for run_id, flag in zip(runs, flags, strict=True):
            if flag:
                self._cancelled(run_id)

    def _cancelled(self, run_id: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(run_id)
            except Exception:
                report("RedisHub: a cancel listener")
