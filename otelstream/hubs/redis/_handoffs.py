"""Hand-offs on the Redis hub (see `hubs/_handoffs.py`): a finished hand-off is a field of the
run's `PREFIX:{run_id}:handoffs` hash (the run's slot), written by whichever process finished
it, after the events it published before; the process that began it polls that hash."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Final

from otelstream.hubs._handoffs import Handoffs
from otelstream.hubs.redis._loop import IOLoop
from otelstream.hubs.redis._writer import Writer

_POLL_S: Final = 0.05
_FLUSH_S: Final = 5.0


class RedisHandoffs:
    def __init__(self, io: IOLoop, writer: Writer, prefix: str, ttl_ms: int) -> None:
        self.io, self.writer, self.prefix, self.ttl_ms = io, writer, prefix, ttl_ms
        self.book = Handoffs()
        self._inflight: set[concurrent.futures.Future[None]] = set()

    def key(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:handoffs"

    def handoff(self, run_id: str, handoff_id: str, done: bool) -> None:
        """Any thread, never waits: a begun one is noted here, a finished one stored."""
        if not done:
            self.book.begin(run_id, handoff_id)
            return
        self.book.finish(run_id, handoff_id)
        coro = self.io.quietly(self._store(run_id, handoff_id))
        future = asyncio.run_coroutine_threadsafe(coro, self.io.ensure())
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)

    async def _store(self, run_id: str, handoff_id: str) -> None:
        await self.writer.flush(_FLUSH_S)  # the events it published first: they come first
        async with self.io.query.pipeline(transaction=False) as pipe:
            pipe.hset(self.key(run_id), handoff_id, 1)
            pipe.pexpire(self.key(run_id), self.ttl_ms)
            await pipe.execute()

    def wait(self, run_id: str, timeout: float) -> int:
        """The runner's thread: how many hand-offs this process began for the run are still
        out after waiting up to `timeout` seconds (none begun: 0 at once, no round trip)."""
        began = self.book.began(run_id)
        if not began:
            return 0
        coro = self.io.quietly(self._wait(run_id, began, timeout))
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.io.ensure()).result(timeout + 5)
        finally:
            self.book.forget(run_id)

    async def _wait(self, run_id: str, began: set[str], timeout: float) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            out = began - set(await self.io.query.hkeys(self.key(run_id)))
            if not out or loop.time() >= deadline:
                return len(out)
            await asyncio.sleep(_POLL_S)

    def drain(self, timeout: float) -> None:
        """At close: let the finished hand-offs on their way be stored."""
        concurrent.futures.wait(list(self._inflight), timeout)
