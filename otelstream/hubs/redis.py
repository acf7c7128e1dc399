"""RedisHub: each run is a Redis stream, so several processes publish into and stream one run.

    hub = RedisHub("redis://127.0.0.1:6379/0")      # needs the `redis` extra
    provider.add_span_processor(EventStreamProcessor(hub))

All Redis I/O runs on one background thread with its own event loop (redis-py's
asyncio client), for three reasons: `publish` is called from any thread and must
only append to a buffer; subscribers live on whatever loops the application
runs, while a redis-py asyncio connection belongs to one loop; and one loop can
keep a blocking XREAD open while it writes, replays and answers `get_run` on
other connections, and cancel nothing to do so (a sync client in threads would
need a thread per blocking read and could not interrupt it).

- Writing: a bounded buffer, drained in pipelined batches of a Lua script that
  gives the run's next seq (one counter per run in Redis, so seqs stay 1..N
  across processes) and XADDs the event with the id `SEQ-0`.
- Reading: one XREAD per process over every run that has local subscribers;
  events are decoded once and fanned out to subscribers as in `MemoryHub`.
- Loss: events that cannot be stored are counted (`lost_events`) and logged;
  local subscribers of the run get an `events_lost` event and their stream
  ends, and once Redis answers a marker in the run's stream tells the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from typing import Any, Final, Self, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from redis.asyncio import Redis
from redis.asyncio.connection import BlockingConnectionPool, Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from otelstream._errors import internal_errors, logger, report, warn_limited
from otelstream._notices import STREAM_OVERFLOW, notice_frame
from otelstream.events import PIPELINE_COMPLETED, PIPELINE_STARTED, Event
from otelstream.hubs import HubUnavailable, RunPage, RunPosition, SubscriberLagged, UnknownRun
from otelstream.hubs._redis_codec import (
    MARK_LOST,
    PUBLISH,
    LostEvent,
    decode,
    encode,
    marker_seq,
    meta_key,
    stream_key,
)
from otelstream.hubs._redis_runs import RunIndex
from otelstream.hubs._runs import RunTree
from otelstream.hubs._wake import Subscriber
from otelstream.settings import Settings

T = TypeVar("T")

_BATCH: Final = 500
"""Events per pipelined round trip."""
_READ_COUNT: Final = 1_000
"""Entries per stream and XREAD."""
_BLOCK_MS: Final = 2_000
_MAX_CONNECTIONS: Final = 32  # beside the one blocking reader
_POOL_WAIT_S: Final = 10.0  # how long a command waits for a free connection
"""An XREAD returns at least this often; new runs normally interrupt it with CLIENT UNBLOCK."""
_BACKOFF_S: Final = (0.05, 0.25)
"""Between retries while Redis is down: short, so that runs go on soon after it is back."""
_FRESH_S: Final = 0.25
"""The writer pings first when it has not reached Redis for this long (stale connections)."""
_CHECK_S: Final = 1.0
"""How long `check` waits for Redis's PING."""
_UNREACHABLE: Final = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
"""What an unreachable or hung Redis raises: operational, told as warnings and 503s."""
_FLUSH_S: Final = 2.0
"""How long `get_run` waits for events published before it to be written."""

_MORE, _END, _LOST = 0, 1, 2


def _option(settings: Settings, name: str, default: float) -> float:
    """A Redis setting of `Settings`, or its default where settings.py does not have it yet."""
    value = getattr(settings, name, default)
    return float(value)


def _quiet_context() -> otel_context.Context:
    """An empty context with instrumentation suppressed: the hub's own I/O makes no spans."""
    token = otel_context.attach(otel_context.Context())
    try:
        with suppress_instrumentation():
            return otel_context.get_current()
    finally:
        otel_context.detach(token)


class _Barrier:
    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future


class _Watch:
    """This process's view of one run with local subscribers, fed by the shared XREAD."""

    __slots__ = (
        "base",
        "cursor",
        "events",
        "failed",
        "finished",
        "last_seq",
        "markers",
        "reading",
        "run_id",
        "subscribers",
    )

    def __init__(self, run_id: str, base: int, maxlen: int) -> None:
        self.run_id = run_id
        self.base = base  # read from Redis after this seq; earlier ones by XRANGE
        self.cursor = f"{base}-0"
        self.events: deque[Event] = deque(maxlen=maxlen)
        self.last_seq = base
        self.markers: list[int] = []
        self.finished = False
        self.reading = True
        self.failed: str | None = None
        self.subscribers: tuple[Subscriber, ...] = ()


class RedisHub:
    """A `Hub` whose runs live in Redis streams; `publish` never waits for Redis.

    Finished runs expire after `run_retention_seconds`, each stream keeps the
    newest `replay_events` events. Call `close()` before a worker process exits,
    so what is still buffered gets written.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        settings: Settings | None = None,
        *,
        key_prefix: str = "otelstream",
        buffer_events: int | None = None,
        running_ttl_seconds: float | None = None,
        socket_timeout: float = 5.0,
    ) -> None:
        self.settings = settings = settings or Settings()
        self.url = url
        self.key_prefix = key_prefix
        self.buffer_events = buffer_events or int(_option(settings, "redis_buffer_events", 10_000))
        running = running_ttl_seconds or _option(settings, "redis_running_ttl_seconds", 86_400)
        self._ttl_running = str(max(1, int(running * 1000)))
        self._ttl_finished = str(int(settings.run_retention_seconds * 1000))
        self._maxlen = str(settings.replay_events)
        self._common = (self._maxlen, self._ttl_running, self._ttl_finished)
        self._socket_timeout = socket_timeout
        self._keep = settings.max_active_runs + settings.max_finished_runs

        self.lost_events = 0
        """Events that never reached Redis: buffer full, Redis down, or their run vanished."""
        self.dropped_events = 0
        """Events Redis refused because their run had already ended."""

        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._buffer: deque[tuple[str, Event] | _Barrier] = deque()
        self._opened: OrderedDict[str, None] = OrderedDict()  # started here: known at once
        self._stored: OrderedDict[str, None] = OrderedDict()  # this process wrote events of
        self._unmarked: OrderedDict[str, int] = OrderedDict()  # lost events awaiting a marker
        self._watches: dict[str, _Watch] = {}
        self._refused: OrderedDict[str, None] = OrderedDict()  # over max_active_runs
        self._index = RunIndex(
            key_prefix,
            max_active=settings.max_active_runs,
            max_finished=settings.max_finished_runs,
            running_ttl_s=running,
            retention_s=settings.run_retention_seconds,
        )
        self._cancel_listeners: list[Callable[[str], bool]] = []
        self._gen = 0  # bumped when the set of watched runs changes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._kicked = False
        self._closed = False
        # owned by the I/O loop
        self._wake = asyncio.Event()
        self._watch_changed = asyncio.Event()
        self._client: Redis | None = None
        self._reader_id: int | None = None
        self._reading = False
        self._reading_gen = -1
        self._unblocking = False
        self._writing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._quiet = _quiet_context()
        self._contact = float("-inf")  # monotonic time Redis last answered
        self._down_since: float | None = None  # set while Redis is known to be unreachable

    # -- the hot path -------------------------------------------------------------------------

    def publish(self, run_id: str, event: Event) -> None:
        """Append to the buffer and wake the writer (at most one wake-up pending); no I/O."""
        loop = self._loop
        if loop is None or self._pid != os.getpid():
            loop = self._start()
        if event.type == PIPELINE_STARTED:
            self._remember(self._opened, run_id)
        if self._closed or len(self._buffer) >= self.buffer_events:
            self._lose(run_id, 1, "the buffer is full" if not self._closed else "the hub is closed")
            return
        self._buffer.append((run_id, event))
        if not self._kicked:
            self._kicked = True
            try:
                loop.call_soon_threadsafe(self._kick)
            except RuntimeError:  # the loop is closed: nothing will write it
                self._kicked = False

    def _kick(self) -> None:
        self._kicked = False
        self._wake.set()

    def _remember(self, runs: OrderedDict[str, Any], run_id: str) -> None:
        with self._lock:
            runs[run_id] = None
            while len(runs) > self._keep:
                runs.popitem(last=False)

    def _lose(self, run_id: str, count: int, why: str) -> None:
        """Count, warn, tell this process's subscribers of the run, and queue a marker."""
        with self._lock:
            self.lost_events += count
            self._unmarked[run_id] = self._unmarked.get(run_id, 0) + count
            while len(self._unmarked) > self._keep:
                self._unmarked.popitem(last=False)
            subscribers = self._fail(run_id, f"events of this run were lost: {why}")
        for subscriber in subscribers:
            subscriber.notify()
        warn_limited(
            "otelstream: %d event(s) of run %s were not stored in Redis: %s; its streams end "
            "with events_lost (if Redis is slow or down, check it; if the buffer fills up, "
            "raise OTELSTREAM_REDIS_BUFFER_EVENTS)",
            count,
            run_id,
            why,
        )

    def _unreachable(self, exc: BaseException) -> None:
        """An operational failure, not a bug: say what to do, at most every few seconds."""
        warn_limited(
            "otelstream: Redis at %s cannot be reached (%s): check that it is running and "
            "reachable; meanwhile events are counted lost and streams end with events_lost",
            self.url,
            exc,
        )

    def _fail(self, run_id: str, message: str) -> tuple[Subscriber, ...]:
        """Lock held: the run's watch ends its subscribers; a new subscriber starts afresh."""
        watch = self._watches.pop(run_id, None)
        if watch is None:
            return ()
        self._gen += 1
        watch.failed = message
        return watch.subscribers

    # -- readers ------------------------------------------------------------------------------

    def subscribe(self, run_id: str, after: int = 0) -> RedisSubscription:
        """Whether the run exists is known on entering (it takes a round trip to Redis)."""
        return RedisSubscription(self, run_id, after)

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        """From Redis, after what this process published before the call is written."""
        return await self._call(self._get_run(run_id))

    async def position(self, run_id: str) -> RunPosition | None:
        """O(1) in the run's length: the run's hash, and its last entry once it has ended."""
        return await self._call(self._position(run_id))

    async def cancel(self, run_id: str) -> bool:
        """Ask the process that runs `run_id` (any process sharing the Redis) to cancel it;
        False when the run is not running."""
        return await self._call(self._cancel(run_id))

    async def _cancel(self, run_id: str) -> bool:
        assert self._client is not None
        return await self._index.cancel(self._client, run_id)

    def on_cancel(self, listener: Callable[[str], bool]) -> Callable[[], None]:
        """Call `listener(run_id)` (on the hub's thread) when any process asks to cancel a
        run; returns the function that stops it. The router's runner listens."""
        self._cancel_listeners.append(listener)
        self._ensure_loop()

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._cancel_listeners.remove(listener)

        return remove

    async def _listen_for_cancels(self, client: Redis) -> None:
        """One pub/sub connection per process, resubscribed after an outage."""
        while True:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._index.channel)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._cancelled(str(message["data"]))
            except _UNREACHABLE:
                await asyncio.sleep(_BACKOFF_S[1])
            except Exception:
                report("RedisHub: listening for cancel requests")
                await asyncio.sleep(_BACKOFF_S[1])
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _cancelled(self, run_id: str) -> None:
        for listener in list(self._cancel_listeners):
            try:
                listener(run_id)
            except Exception:
                report("RedisHub: a cancel listener")

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait (up to `timeout`) until every event published before the call is written."""
        await self._call(self._flush(timeout))

    def close(self, timeout: float = 5.0) -> None:
        """Write what is buffered (waiting up to `timeout` seconds) and stop the I/O thread."""
        loop, thread = self._loop, self._thread
        if self._closed or loop is None or thread is None or self._pid != os.getpid():
            return
        self._closed = True
        future = asyncio.run_coroutine_threadsafe(self._quietly(self._shutdown(timeout)), loop)
        try:
            future.result(timeout + 1)
        except Exception:  # a wedged Redis must not keep a process from exiting
            future.cancel()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    async def list_runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        raise NotImplementedError("RedisHub.list_runs: the Redis side of the runs list")

    def subscribe_runs(self, after: int = 0) -> RedisSubscription:
        raise NotImplementedError("RedisHub.subscribe_runs: the Redis side of the runs stream")

    def subscriber_count(self, run_id: str | None = None) -> int:
        """Open subscriptions in this process, of one run or of all; for tests and health checks."""
        with self._lock:
            watches = self._watches.values() if run_id is None else [self._watches.get(run_id)]
            return sum(len(watch.subscribers) for watch in watches if watch is not None)

    def _attach(self, run_id: str, after: int, subscriber: Subscriber) -> _Watch:
        with self._lock:
            watch = self._watches.get(run_id)
            created = watch is None
            if watch is None:
                watch = self._watches[run_id] = _Watch(run_id, after, self.settings.replay_events)
                self._gen += 1
            watch.subscribers = (*watch.subscribers, subscriber)
        if created:
            self._ensure_loop().call_soon_threadsafe(self._watches_changed)
        return watch

    def _detach(self, watch: _Watch, subscriber: Subscriber) -> None:
        with self._lock:
            watch.subscribers = tuple(s for s in watch.subscribers if s is not subscriber)
            if not watch.subscribers and self._watches.get(watch.run_id) is watch:
                del self._watches[watch.run_id]
                self._gen += 1

    def _read(self, sub: RedisSubscription) -> tuple[list[Event], int]:
        """What `sub` may have next, and whether its stream goes on, ends, or lost events."""
        watch, after = sub._watch, sub.last_seq
        assert watch is not None
        with self._lock:
            events: list[Event] = []
            if sub._backlog:
                events, sub._backlog = [e for e in sub._backlog if e.seq > after], []
            if not events and (pending := watch.last_seq - after) > 0:
                kept = watch.events
                count = min(pending, len(kept))
                if not sub._first and count < pending:
                    raise SubscriberLagged(after)
                events = [kept[i] for i in range(len(kept) - count, len(kept))]
                sub._first = False
            # A marker at seq m: events after m were lost; `after == m` has been told already.
            markers = [m for m in (*sub._markers, *watch.markers) if m > sub._start]
            if markers:
                stop = min(markers)
                events = [e for e in events if e.seq <= stop]
                if not events:
                    return [], _LOST
            if events:
                return events, _MORE
            if watch.failed is not None or sub._failed is not None:
                return [], _LOST
            return [], _END if watch.finished else _MORE

    # -- the I/O loop -------------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None or self._pid != os.getpid():
            loop = self._start()
        return loop

    def _start(self) -> asyncio.AbstractEventLoop:
        """Start the I/O thread (again, in a forked child): never waits for it or for Redis."""
        with self._start_lock:
            if self._loop is not None and self._pid == os.getpid():
                return self._loop
            if self._pid:  # a forked child: the parent's thread and buffer are not ours
                self._buffer.clear()
                self._watches.clear()
                self._wake, self._watch_changed = asyncio.Event(), asyncio.Event()
                self._kicked = False
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=self._run_loop, args=(loop,), name="otelstream-redis", daemon=True
            )
            self._loop, self._thread, self._pid = loop, thread, os.getpid()
            thread.start()
            return loop

    def _run_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        otel_context.attach(self._quiet)
        asyncio.set_event_loop(loop)
        options: dict[str, Any] = {
            "decode_responses": True,
            "protocol": 2,  # the replies' shapes are the same from redis-py 5 to 8
            # Reads are retried once on a new connection: after Redis restarts, every pooled
            # connection is stale, and that is no outage. Writes are not (a script is not
            # idempotent): the writer pings first instead.
            "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            "socket_connect_timeout": self._socket_timeout,
        }
        # A bounded pool whose callers wait for a free connection: a burst of streams opening
        # at once (each looks its run up) must queue, not fail with "too many connections".
        pool = BlockingConnectionPool.from_url(
            self.url,
            max_connections=_MAX_CONNECTIONS,
            timeout=_POOL_WAIT_S,
            socket_timeout=self._socket_timeout,
            **options,
        )
        client = self._client = Redis.from_pool(pool)
        writer = Redis.from_pool(  # pings and pipelines share one connection, mostly
            BlockingConnectionPool.from_url(
                self.url,
                max_connections=2,
                timeout=_POOL_WAIT_S,
                socket_timeout=self._socket_timeout,
                **{**options, "retry": Retry(NoBackoff(), 0)},
            )
        )
        reader = Redis.from_url(
            self.url,
            single_connection_client=True,
            socket_timeout=_BLOCK_MS / 1000 + self._socket_timeout,
            redis_connect_func=self._on_reader_connect,
            **options,
        )
        self._tasks = [
            loop.create_task(self._writer(writer)),
            loop.create_task(self._reader(reader)),
            loop.create_task(self._listen_for_cancels(client)),
        ]
        try:
            loop.run_forever()
        finally:
            for task in self._tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
            loop.run_until_complete(_close_clients(client, writer, reader))
            loop.close()

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the I/O loop and wait for it on the caller's loop; HubUnavailable when
        Redis cannot be reached."""
        future = asyncio.run_coroutine_threadsafe(self._quietly(coro), self._ensure_loop())
        try:
            return await asyncio.wrap_future(future)
        except _UNREACHABLE as exc:
            raise HubUnavailable(f"Redis cannot be reached: {exc}") from None

    async def _quietly(self, coro: Coroutine[Any, Any, T]) -> T:
        # run_coroutine_threadsafe runs the task in the caller's context: drop its spans and marks
        token = otel_context.attach(self._quiet)
        try:
            result = await coro
        except _UNREACHABLE as exc:
            self._down(exc)
            raise
        finally:
            otel_context.detach(token)
        self._up()
        return result

    def _up(self) -> None:
        """Redis answered (I/O loop)."""
        self._contact = time.monotonic()
        if self._down_since is not None:
            self._down_since = None
            logger.warning("otelstream: Redis at %s answers again", self.url)

    def _down(self, exc: BaseException) -> None:
        """Redis did not answer (I/O loop): say so once per outage, end the streams it feeds."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._unreachable(exc)
        with self._lock:
            failed = [
                self._fail(run_id, "Redis cannot be reached") for run_id in list(self._watches)
            ]
        for subscribers in failed:
            for subscriber in subscribers:
                subscriber.notify()

    async def check(self) -> None:
        """Whether a run started now can be streamed: Redis answers a PING within a second
        (a round trip on the I/O loop, far less than starting a run); HubUnavailable if not."""
        try:
            await asyncio.wait_for(self._call(self._ping()), _CHECK_S)
        except TimeoutError:
            raise HubUnavailable(f"Redis did not answer within {_CHECK_S} s") from None

    async def _ping(self) -> None:
        assert self._client is not None
        await self._client.ping()

    async def _shutdown(self, timeout: float) -> None:
        await self._flush(timeout)
        with self._lock:
            failed = [self._fail(run_id, "the hub was closed") for run_id in list(self._watches)]
        for subscribers in failed:
            for subscriber in subscribers:
                subscriber.notify()

    async def _flush(self, timeout: float) -> None:
        if not self._buffer and not self._writing:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer.append(_Barrier(future))
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(future, timeout)

    # writing

    async def _writer(self, client: Redis) -> None:
        publish = client.register_script(PUBLISH)
        mark = client.register_script(MARK_LOST)
        backoff = 0.0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._buffer:
                if backoff:  # Redis failed: events wait in the (bounded) buffer meanwhile
                    await asyncio.sleep(backoff)
                if (backoff or time.monotonic() - self._contact > _FRESH_S) and not (
                    await self._reachable(client)
                ):
                    backoff = min(max(backoff * 2, _BACKOFF_S[0]), _BACKOFF_S[1])
                    self._release_barriers()
                    continue
                backoff = 0.0
                batch, barriers = self._take()
                self._writing = True
                try:
                    if batch and not await self._write(client, publish, batch):
                        backoff = _BACKOFF_S[0]
                    elif self._unmarked:
                        await self._write_markers(client, mark)
                finally:
                    self._writing = False
                for barrier in barriers:
                    if not barrier.future.done():
                        barrier.future.set_result(None)

    async def _reachable(self, client: Redis) -> bool:
        """PING before writing after a pause: a connection that went stale while Redis
        restarted is dropped here, not found out by losing a batch of a new run's events."""
        for attempt in range(2):
            try:
                await client.ping()
            except _UNREACHABLE as exc:
                await _reset(client)
                if attempt:
                    self._down(exc)
            else:
                self._up()
                return True
        return False

    def _take(self) -> tuple[list[tuple[str, Event]], list[_Barrier]]:
        """The next batch. It ends before a run's start that follows another run's end: that
        run's place is given back (`retire`) before the next is asked for (`admit`)."""
        batch: list[tuple[str, Event]] = []
        barriers: list[_Barrier] = []
        buffer = self._buffer
        ended = False
        while buffer and len(batch) < _BATCH:
            item = buffer[0]
            if isinstance(item, _Barrier):
                barriers.append(item)
            else:
                kind = item[1].type
                if ended and kind == PIPELINE_STARTED:
                    break
                ended = ended or kind == PIPELINE_COMPLETED
                batch.append(item)
            buffer.popleft()
        return batch, barriers

    def _release_barriers(self) -> None:
        """While Redis is down, `get_run` and `flush` stop waiting for the buffer."""
        for item in self._buffer:
            if isinstance(item, _Barrier) and not item.future.done():
                item.future.set_result(None)

    async def _write(self, client: Redis, publish: Any, batch: list[tuple[str, Event]]) -> bool:
        """One pipelined round trip; False when Redis failed (the batch's events are lost).

        An event that cannot be encoded, or that Redis refuses, costs only itself:
        it is counted lost and its run's streams are told; the rest is written.
        """
        results: list[Any] | None = None
        bad_batch = False
        try:
            batch = await self._admit(client, batch)
        except _UNREACHABLE as exc:
            self._down(exc)
            await _reset(client)
            for run_id, count in _count_by_run(batch).items():
                self._lose(run_id, count, "Redis did not answer")
            return False
        async with client.pipeline(transaction=False) as pipe:
            sent = [item for item in batch if await self._queue(pipe, publish, *item)]
            if not sent:
                return True
            try:
                results = await pipe.execute(raise_on_error=False)
            except _UNREACHABLE as exc:
                self._down(exc)
                await _reset(client)
            except Exception:  # not Redis's doing: one event is bad, find it
                report("RedisHub: writing a batch of events")
                bad_batch = True
        if bad_batch:
            if len(sent) == 1:
                self._lose(sent[0][0], 1, "it could not be sent to Redis")
                return True
            for item in sent:  # one by one, so only the culprit is lost
                await self._write(client, publish, [item])
            return True
        if results is None:
            for run_id, count in _count_by_run(sent).items():
                self._lose(run_id, count, "Redis did not answer")
            return False
        self._up()
        self._settle(sent, results)
        ended = [
            run_id
            for (run_id, event), result in zip(sent, results, strict=True)
            if event.type == PIPELINE_COMPLETED and isinstance(result, int) and result > 0
        ]
        if ended:
            with contextlib.suppress(*_UNREACHABLE):  # the runs' keys expire all the same
                await self._index.retire(client, ended)
        return True

    async def _admit(
        self, client: Redis, batch: list[tuple[str, Event]]
    ) -> list[tuple[str, Event]]:
        """The batch without the events of runs refused for `max_active_runs` (counted
        across every process sharing the Redis): those are traced, not streamed."""
        starts = [run_id for run_id, event in batch if event.type == PIPELINE_STARTED]
        if starts:
            for run_id in await self._index.admit(client, starts):
                self._remember(self._refused, run_id)
                with self._lock:
                    self._opened.pop(run_id, None)
                warn_limited(
                    "otelstream: %d runs are streaming across the processes sharing this "
                    "Redis (max_active_runs): run %s is traced but not streamed",
                    self.settings.max_active_runs,
                    run_id,
                )
        refused = self._refused
        if not refused:
            return batch
        kept = [item for item in batch if item[0] not in refused]
        self.dropped_events += len(batch) - len(kept)
        return kept

    async def _queue(self, pipe: Any, publish: Any, run_id: str, event: Event) -> bool:
        """Add one event's script call to `pipe`; False (and the event lost) if it cannot be."""
        try:
            head, tail, time_ns, duration = encode(event)
        except Exception as exc:
            self._lose(run_id, 1, f"it could not be encoded ({exc!r})")
            return False
        stored = "1" if run_id in self._stored else "0"
        keys = [stream_key(self.key_prefix, run_id), meta_key(self.key_prefix, run_id)]
        args = [event.type, head, tail, time_ns, duration, *self._common, stored]
        await publish(keys=keys, args=args, client=pipe)
        return True

    def _settle(self, sent: list[tuple[str, Event]], results: list[Any]) -> None:
        for (run_id, event), result in zip(sent, results, strict=True):
            if isinstance(result, Exception) or result == -1:
                why = "its run vanished from Redis" if result == -1 else str(result)
                self._lose(run_id, 1, why)
            elif result == 0:
                self.dropped_events += 1
            elif event.type == PIPELINE_COMPLETED:  # Redis knows it now, and forgets it
                with self._lock:
                    self._stored.pop(run_id, None)
                    self._opened.pop(run_id, None)
            elif run_id not in self._stored:
                self._remember(self._stored, run_id)

    async def _write_markers(self, client: Redis, mark: Any) -> None:
        with self._lock:
            pending, self._unmarked = self._unmarked, OrderedDict()
        written = False
        async with client.pipeline(transaction=False) as pipe:
            for run_id, count in pending.items():
                keys = [stream_key(self.key_prefix, run_id), meta_key(self.key_prefix, run_id)]
                await mark(keys=keys, args=[count, self._maxlen], client=pipe)
            with contextlib.suppress(*_UNREACHABLE):
                await pipe.execute(raise_on_error=False)
                written = True
        if not written:  # try again after the next batch
            with self._lock:
                for run_id, count in pending.items():
                    self._unmarked[run_id] = self._unmarked.get(run_id, 0) + count

    # reading

    async def _on_reader_connect(self, connection: Connection) -> None:
        """Learn the reader connection's id, so a new run can interrupt its blocking XREAD."""
        await connection.on_connect()
        await connection.send_command("CLIENT", "ID")
        self._reader_id = int(await connection.read_response())

    def _watches_changed(self) -> None:
        self._watch_changed.set()
        if self._reading and not self._unblocking and self._client is not None:
            asyncio.get_running_loop().create_task(self._unblock(self._client))

    async def _unblock(self, client: Redis) -> None:
        self._unblocking = True
        try:
            for _ in range(200):
                if not self._reading or self._reading_gen == self._gen:
                    return
                reader_id = self._reader_id
                if reader_id is not None and await client.client_unblock(reader_id):
                    return
                await asyncio.sleep(0.002)  # its XREAD is on the way: unblock it once it blocks
        except Exception:  # the reader's own timeout takes over
            return
        finally:
            self._unblocking = False

    async def _reader(self, client: Redis) -> None:
        backoff = _BACKOFF_S[0]
        while True:
            with self._lock:
                watched = {
                    stream_key(self.key_prefix, run_id): watch
                    for run_id, watch in self._watches.items()
                    if watch.reading
                }
                self._reading_gen = self._gen
            streams: dict[Any, Any] = {key: watch.cursor for key, watch in watched.items()}
            if not streams:
                self._watch_changed.clear()
                await self._watch_changed.wait()
                continue
            response: Any = None
            self._reading = True
            try:
                response = await client.xread(streams, count=_READ_COUNT, block=_BLOCK_MS)
                response = response or []
                self._up()
            except _UNREACHABLE as exc:
                self._down(exc)  # ends the streams of every watched run
            except Exception:
                report("RedisHub: reading events from Redis")
            finally:
                self._reading = False
            if response is None:
                self._reader_id = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_S[1])
                continue
            backoff = _BACKOFF_S[0]
            with internal_errors("RedisHub: decoding events"):
                self._apply(response, watched)

    def _apply(self, response: Any, watched: dict[str, _Watch]) -> None:
        """Entries for the watches the XREAD was made for, if they are still the run's watch."""
        woken: list[Subscriber] = []
        with self._lock:
            for key, entries in response:
                watch = watched.get(key)
                if watch is None or self._watches.get(watch.run_id) is not watch:
                    continue  # dropped meanwhile; a new watch of the run reads from its own cursor
                for entry_id, fields in entries:
                    watch.cursor = entry_id
                    marker = marker_seq(entry_id)
                    if marker is not None:
                        watch.markers.append(marker)
                        continue
                    event = decode(fields)
                    if event.seq > watch.last_seq:
                        watch.events.append(event)
                        watch.last_seq = event.seq
                    if event.type == PIPELINE_COMPLETED:
                        watch.finished, watch.reading = True, False
                        self._gen += 1
                woken.extend(watch.subscribers)
        for subscriber in woken:
            subscriber.notify()

    async def _lookup(self, run_id: str) -> tuple[bool, int | None]:
        """(whether the run is in Redis, the seq it ended with)."""
        assert self._client is not None
        seq, done = await self._client.hmget(meta_key(self.key_prefix, run_id), "seq", "done")
        return seq is not None, None if done is None else int(done)

    async def _range(self, run_id: str, after: int, upto: int) -> tuple[list[Event], list[int]]:
        """Events `after` < seq <= `upto` and the loss markers among them, from the stream."""
        assert self._client is not None
        key = stream_key(self.key_prefix, run_id)
        entries: list[tuple[str, dict[str, str]]] = cast(
            Any, await self._client.xrange(key, f"({after}-0", str(upto))
        )
        events: list[Event] = []
        markers: list[int] = []
        for entry_id, fields in entries:
            marker = marker_seq(entry_id)
            if marker is None:
                events.append(decode(fields))
            else:
                markers.append(marker)
        return events, markers

    async def _position(self, run_id: str) -> RunPosition | None:
        assert self._client is not None
        await self._flush(_FLUSH_S)
        seq, done = await self._client.hmget(meta_key(self.key_prefix, run_id), "seq", "done")
        if seq is None:
            with self._lock:
                known = run_id in self._opened
            return RunPosition(0, False, "running") if known else None
        if done is None:
            return RunPosition(int(seq), False, "running")
        last: list[tuple[str, dict[str, str]]] = cast(
            Any, await self._client.xrange(stream_key(self.key_prefix, run_id), done, done)
        )
        status = decode(last[0][1]).status if last else None
        return RunPosition(int(seq), True, status or "success")

    async def _get_run(self, run_id: str) -> dict[str, Any] | None:
        assert self._client is not None
        await self._flush(_FLUSH_S)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hgetall(meta_key(self.key_prefix, run_id))
            pipe.xrange(stream_key(self.key_prefix, run_id))
            found: list[Any] = await pipe.execute()
        if not found or not found[0]:
            return None
        meta: dict[str, str] = found[0]
        tree = RunTree(max_spans=self.settings.replay_events)
        events = [decode(fields) for entry_id, fields in found[1] if marker_seq(entry_id) is None]
        if "start" in meta and (not events or events[0].seq != 1):  # trimmed from the stream
            tree.apply(decode({"e": meta["start"], "t": meta["start_t"]}))
        for event in events:
            tree.apply(event)
        run = tree.snapshot(run_id, int(meta.get("seq", 0))).to_dict()
        if int(meta.get("lost", 0)):
            run["events_lost"] = int(meta["lost"])
        return run


class RedisSubscription:
    """One reader of one run in this process, fed by the hub's shared XREAD."""

    def __init__(self, hub: RedisHub, run_id: str, after: int) -> None:
        self._hub = hub
        self.run_id = run_id
        self.last_seq = after
        self._start = after
        self._first = True
        self._done = False
        self._watch: _Watch | None = None
        self._subscriber: Subscriber | None = None
        self._backlog: list[Event] = []
        self._markers: list[int] = []
        self._failed: str | None = None

    async def __aenter__(self) -> Self:
        hub, run_id = self._hub, self.run_id
        with hub._lock:
            known = run_id in hub._opened or run_id in hub._watches
        try:
            found = await hub._call(hub._lookup(run_id))
        except HubUnavailable:
            self._failed = "Redis cannot be reached"
        else:
            exists, done = found
            if not exists and not known:
                raise UnknownRun(run_id)
            if done is not None and self._start >= done:
                self._done = True  # the run is over and the reader has every event
        subscriber = self._subscriber = Subscriber(asyncio.get_running_loop())
        if self._done:
            return self
        watch = self._watch = hub._attach(run_id, self._start, subscriber)
        if watch.base > self._start and self._failed is None:
            # the run was already watched here from a later seq: the rest comes from the stream
            try:
                self._backlog, self._markers = await hub._call(
                    hub._range(run_id, self._start, watch.base)
                )
            except HubUnavailable:
                self._failed = "Redis cannot be reached"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._watch is not None and self._subscriber is not None:
            self._hub._detach(self._watch, self._subscriber)
            self._subscriber = None

    async def next_frames(self, timeout: float) -> bytes | None:
        """As the shared engine's (until this hub's reader feeds it): the batch, framed."""
        try:
            batch = await self.next_batch(timeout)
        except SubscriberLagged as lagged:
            return notice_frame(STREAM_OVERFLOW, self.run_id, lagged.last_seq, reason="evicted")
        return None if batch is None else b"".join([event.sse for event in batch])

    async def next_batch(self, timeout: float) -> list[Event] | None:
        subscriber = self._subscriber
        if subscriber is None:
            raise RuntimeError("use the subscription as `async with hub.subscribe(...)`")
        if self._done:
            return None
        waited = False
        while True:
            events, state = self._hub._read(self)
            if events:
                self.last_seq = events[-1].seq
                return events
            if state != _MORE:
                self._done = True
                if state == _END:
                    return None
                watch = self._watch
                message = (watch and watch.failed) or self._failed or "events of this run were lost"
                return [LostEvent(self.run_id, self.last_seq, message)]
            if waited:
                return []
            waited = not await subscriber.wait(timeout)


def _count_by_run(batch: list[tuple[str, Event]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run_id, _event in batch:
        counts[run_id] = counts.get(run_id, 0) + 1
    return counts


async def _reset(client: Redis) -> None:
    """Drop the writer's connections: the next command opens a new one."""
    with contextlib.suppress(Exception):
        await client.connection_pool.disconnect()


async def _close_clients(*clients: Redis) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            await client.aclose()


__all__ = ["RedisHub", "RedisSubscription"]
