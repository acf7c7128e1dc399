"""RedisHub: the `Hub` of several processes, over the I/O loop, the writer and the reader
(a run read back for a reader of it: `_reads.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final, Self, cast

from otelstream._errors import warn_limited
from otelstream.events import Event
from otelstream.hubs._contract import HubUnavailable, Outcome, RunPage, RunPosition
from otelstream.hubs._fanout import FeedSubscription
from otelstream.hubs._feed import Feed
from otelstream.hubs.redis._cancels import CancelListeners
from otelstream.hubs.redis._handoffs import RedisHandoffs
from otelstream.hubs.redis._history import RedisHistory
from otelstream.hubs.redis._loop import IOLoop
from otelstream.hubs.redis._owners import Owners
from otelstream.hubs.redis._reader import BLOCK_MS, RUNS, Reader
from otelstream.hubs.redis._reads import FLUSH_S, RunReads
from otelstream.hubs.redis._registry import RunRegistry
from otelstream.hubs.redis._seen import first_seen
from otelstream.hubs.redis._writer import Writer
from otelstream.settings import Settings

_CHECK_S: Final = 1.0
"""How long `check` waits for Redis's PING."""


class RedisHub:
    """A `Hub` whose runs live in Redis streams; `publish` never waits for Redis.

    `url` is `redis://host:port/db` (or `rediss://`, `unix://`), or
    `redis+cluster://host:port` for Redis Cluster (one seed node). Finished runs
    expire after `run_retention_seconds`; each stream keeps the newest
    `replay_events` events. Call `close()` before a worker process exits, so
    that what is still buffered gets written.
    """

    shared = True  # every worker on the same Redis publishes into the same runs

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        settings: Settings | None = None,
        *,
        key_prefix: str = "otelstream",
        buffer_events: int | None = None,
        running_ttl_seconds: float | None = None,
        socket_timeout: float | None = None,
    ) -> None:
        self.settings = settings = settings or Settings()
        self.url = url
        self.key_prefix = key_prefix
        self.buffer_events = buffer_events or settings.redis_buffer_events
        running = running_ttl_seconds or settings.redis_running_ttl_seconds
        self._running_ttl_ms = max(1, int(running * 1000))
        self._keep = settings.max_active_runs + settings.max_finished_runs
        timeout = socket_timeout or settings.redis_timeout_seconds
        self._io = IOLoop(url, timeout, BLOCK_MS / 1000)
        self._registry = RunRegistry(
            key_prefix,
            max_active=settings.max_active_runs,
            max_finished=settings.max_finished_runs,
            running_ttl_s=running,
            retention_s=settings.run_retention_seconds,
        )
        self._writer = Writer(
            self._io,
            self._registry,
            prefix=key_prefix,
            capacity=self.buffer_events,
            capacity_bytes=settings.redis_buffer_bytes,
            maxlen=settings.replay_events,
            running_ttl_ms=max(1, int(running * 1000)),
            finished_ttl_ms=int(settings.run_retention_seconds * 1000),
            keep=self._keep,
            lose=self._lose,
        )
        self._owners = Owners(
            self._io,
            self._registry,
            prefix=key_prefix,
            lease_s=settings.worker_lease_seconds,
            publish_args=self._writer.publish_args,
            running=self._writer.running,
            abandon=self._writer.abandon,
            redact_errors=settings.redact_errors,
        )
        self._writer.before_write = self._owners.fresh
        self._history = RedisHistory(
            key_prefix, settings.history_runs, settings.history_ttl_seconds, settings.replay_events
        )
        self._writer.ends.after_ends = self._history.learn
        self._handoffs = RedisHandoffs(
            self._io, self._writer, key_prefix, max(1, int(running * 1000))
        )
        self._reader = Reader(
            self._io, key_prefix, settings.replay_events, self._registry.lifecycle
        )
        self._reads = RunReads(
            self._io, self._writer, self._reader, self._registry, key_prefix, settings
        )
        self._cancels = CancelListeners(
            self._io, self._registry.channel, key_prefix, self._writer.running
        )
        self._closed = False

    @property
    def lost_events(self) -> int:
        """Events that never reached Redis: buffer full, Redis down, or their run vanished."""
        return self._writer.lost_events

    @property
    def dropped_events(self) -> int:
        """Events dropped on purpose: after their run's end, or of a run over the bound."""
        return self._writer.dropped_events

    # -- the hot path -------------------------------------------------------------------------

    def publish(self, run_id: str, event: Event) -> None:
        """Append to the writer's buffer; no I/O, no waiting."""
        if self._closed or not self._writer.put(run_id, event):
            self._lose(run_id, 1, "the hub is closed" if self._closed else "the buffer is full")

    def _lose(self, run_id: str, count: int, why: str) -> None:
        """Count, warn, tell this process's readers of the run, queue a marker for the others."""
        self._writer.lost(run_id, count)
        self._reader.fail(run_id, f"events of this run were lost: {why}")
        warn_limited(
            "otelstream: %d event(s) of run %s were not stored in Redis: %s; its streams end "
            "with events_lost (if Redis is slow or down, check it; if the buffer fills up, "
            "raise OTELSTREAM_REDIS_BUFFER_BYTES)",
            count,
            run_id,
            why,
        )

    # -- readers ------------------------------------------------------------------------------

    def subscribe(self, run_id: str, after: int = 0) -> RedisSubscription:
        """Whether the run exists is known on entering (it takes a round trip to Redis)."""
        return RedisSubscription(self, run_id, after)

    def subscribe_runs(self, after: int = 0) -> RedisSubscription:
        """The runs stream of every process sharing the Redis."""
        return RedisSubscription(self, RUNS, after)

    async def position(self, run_id: str) -> RunPosition | None:
        """O(1) in the run's length: three fields of the run's hash."""
        return await self._io.call(self._reads.position(run_id))

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        """From Redis, after what this process published before the call is written."""
        return await self._io.call(self._reads.get_run(run_id))

    async def list_runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """The runs every process sharing the Redis started, newest first."""

        async def page() -> RunPage:
            await self._writer.flush(FLUSH_S)
            return RunPage(
                *await self._registry.page(self._io.query, pipeline, status, limit, cursor)
            )

        return await self._io.call(page())

    async def first_seen(self, run_id: str, keys: list[str]) -> set[str]:
        """One script call on a set in the run's hash slot, for every worker at once."""

        async def fresh() -> set[str]:
            await self._writer.flush(FLUSH_S)  # a run started here is known to the script
            limit = self.settings.max_open_spans
            query = self._io.query
            return await first_seen(
                query, self.key_prefix, run_id, keys, limit, self._running_ttl_ms
            )

        return await self._io.call(fresh())

    async def record_history(self, pipeline: str, outcome: Outcome) -> None:
        async def record() -> None:
            await self._history.record(self._io.query, [(pipeline, outcome)])

        await self._io.call(record())

    async def history(self, pipeline: str) -> dict[str, Any]:
        """Every worker's history of the pipeline, after what this process wrote is there."""

        async def read() -> dict[str, Any]:
            await self._writer.flush(FLUSH_S)
            return await self._history.read(self._io.query, pipeline)

        return await self._io.call(read())

    def subscriber_count(self, run_id: str | None = None) -> int:
        """Open subscriptions in this process, of one run or of all."""
        return self._reader.subscriber_count(run_id)

    # -- the rest of the contract -------------------------------------------------------------

    def handoff(self, run_id: str, handoff_id: str, done: bool) -> None:
        """A hand-off began here, or finished (stored for the process that began it)."""
        if self._closed:  # as `publish`: a closed hub stores nothing (its I/O loop is gone)
            return
        self._handoffs.handoff(run_id, handoff_id, done)

    def wait_handoffs(self, run_id: str, timeout: float) -> int:
        """Up to `timeout` for the hand-offs this process began for the run; how many are out."""
        return self._handoffs.wait(run_id, timeout)

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait (up to `timeout`) until every event published before the call is written."""
        await self._io.call(self._writer.flush(timeout))

    async def check(self) -> None:
        """Whether a run started now can be streamed: Redis answers a PING within a second
        (a round trip on the I/O loop, far less than starting a run); HubUnavailable if not."""
        try:
            async with asyncio.timeout(_CHECK_S):  # not wait_for: see `wait_within`
                await self._io.call(self._ping())
        except TimeoutError:
            raise HubUnavailable(f"Redis did not answer within {_CHECK_S} s") from None

    async def cancel(self, run_id: str) -> bool:
        """Ask the process that runs `run_id` (any process sharing the Redis) to cancel it;
        False when the run is not running."""
        return await self._io.call(self._cancel(run_id))

    async def _ping(self) -> None:
        await self._io.query.ping()

    async def _cancel(self, run_id: str) -> bool:
        if await self._owners.beat(self._io.writer, only=run_id):
            return False  # its worker is gone: ended now (WorkerLost), nobody to ask
        return await self._registry.cancel(self._io.query, run_id)

    def on_cancel(self, listener: Callable[[str], bool]) -> Callable[[], None]:
        """Call `listener(run_id)` (on the hub's thread) when any process asks to cancel a
        run; returns the function that stops it. The router's runner listens."""
        self._io.ensure()
        return self._cancels.add(listener)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is buffered (waiting up to `timeout` seconds) and stop the I/O thread."""
        if self._closed:
            return
        self._closed = True
        self._handoffs.drain(timeout)

        async def final() -> None:
            await self._writer.flush(timeout)
            self._reader.fail_all("the hub was closed")

        self._io.stop(final(), timeout)


class RedisSubscription(FeedSubscription):
    """The engine's subscription, entered once the run is known to be in Redis."""

    def __init__(self, hub: RedisHub, run_id: str, after: int) -> None:
        super().__init__(cast(Feed, None), after)
        self._hub = hub
        self.run_id = run_id

    async def __aenter__(self) -> Self:
        self.feed, self.last_seq = await self._hub._reads.open(self.run_id, self.last_seq)
        return await super().__aenter__()
