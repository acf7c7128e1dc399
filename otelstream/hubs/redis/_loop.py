"""The Redis hub's I/O loop: one thread with its own event loop owns every Redis connection.

Three reasons: `publish` is called from any thread and must only append to a
buffer; subscribers live on whatever loops the application runs, while a
redis-py asyncio connection belongs to one loop; and one loop can keep a
blocking XREAD open while it writes and answers lookups on other connections,
and cancel nothing to do so.

It also knows whether Redis answers: the first failure of an outage is logged
as a warning that says what to do (not as an internal error: it is no bug),
the hub's listeners are told (the reader ends its streams), and every caller
gets `HubUnavailable`, which the router answers with 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterError, RedisClusterException, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from otelstream._errors import logger, warn_limited
from otelstream.hubs._contract import HubUnavailable

T = TypeVar("T")

UNREACHABLE: Final = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    TimeoutError,
    ClusterError,  # a cluster without a quorum, or a node down (ClusterDownError, ...)
    RedisClusterException,  # no node answers, or slots not covered
    TryAgainError,  # slots migrating
)
"""What an unreachable or hung Redis raises: operational, told as warnings and 503s."""
_MAX_CONNECTIONS: Final = 32  # beside the blocking reader and the writer
_POOL_WAIT_S: Final = 10.0  # how long a command waits for a free connection
CLUSTER_SCHEME: Final = "redis+cluster://"


def quiet_context() -> otel_context.Context:
    """An empty context with instrumentation suppressed: the hub's own I/O makes no spans."""
    token = otel_context.attach(otel_context.Context())
    try:
        with suppress_instrumentation():
            return otel_context.get_current()
    finally:
        otel_context.detach(token)


class IOLoop:
    """The thread, its loop and the clients; started lazily (again in a forked child)."""

    def __init__(self, url: str, socket_timeout: float, block_s: float) -> None:
        self.cluster = url.startswith(CLUSTER_SCHEME)
        self.url = "redis://" + url[len(CLUSTER_SCHEME) :] if self.cluster else url
        self.socket_timeout = socket_timeout
        self.block_s = block_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pid = 0
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._quiet = quiet_context()
        self.contact = float("-inf")  # monotonic time Redis last answered
        self.down_since: float | None = None  # set while Redis is known to be unreachable
        self.on_down: list[Callable[[], None]] = []  # I/O loop: called on each failure
        self.on_fork: list[Callable[[], None]] = []  # in a forked child, before restarting
        self.tasks: list[Callable[[IOLoop], Coroutine[Any, Any, None]]] = []
        self.query: Any = None  # commands that may be retried once on a new connection
        self.writer: Any = None  # commands that must not be (scripts are not idempotent)
        self.reader: Any = None  # XREAD, replies as bytes: entries are framed as they are
        self.reader_id: int | None = None  # the blocking reader's CLIENT ID

    # -- from any thread ----------------------------------------------------------------------

    def ensure(self) -> asyncio.AbstractEventLoop:
        loop = self.loop
        if loop is None or self.pid != os.getpid():
            loop = self._start()
        return loop

    def _start(self) -> asyncio.AbstractEventLoop:
        """Start the thread: never waits for it or for Redis."""
        with self._start_lock:
            if self.loop is not None and self.pid == os.getpid():
                return self.loop
            if self.pid:  # a forked child: the parent's thread and buffers are not ours
                for reset in self.on_fork:
                    reset()
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=self._run, args=(loop,), name="otelstream-redis", daemon=True
            )
            self.loop, self._thread, self.pid = loop, thread, os.getpid()
            thread.start()
            return loop

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the I/O loop and wait for it on the caller's loop; HubUnavailable when
        Redis cannot be reached."""
        future = asyncio.run_coroutine_threadsafe(self.quietly(coro), self.ensure())
        try:
            return await asyncio.wrap_future(future)
        except UNREACHABLE as exc:
            raise HubUnavailable(f"Redis cannot be reached: {exc}") from None

    def stop(self, final: Coroutine[Any, Any, None], timeout: float) -> None:
        """Run `final` (write what is buffered), then stop the thread; bounded in time."""
        loop, thread = self.loop, self._thread
        if loop is None or thread is None or self.pid != os.getpid():
            final.close()
            return
        future = asyncio.run_coroutine_threadsafe(self.quietly(final), loop)
        try:
            future.result(timeout + 1)
        except Exception:  # a wedged Redis must not keep a process from exiting
            future.cancel()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    # -- on the I/O loop ----------------------------------------------------------------------

    async def quietly(self, coro: Coroutine[Any, Any, T]) -> T:
        # run_coroutine_threadsafe runs the task in the caller's context: drop its spans and marks
        token = otel_context.attach(self._quiet)
        try:
            result = await coro
        except UNREACHABLE as exc:
            self.down(exc)
            raise
        finally:
            otel_context.detach(token)
        self.up()
        return result

    def up(self) -> None:
        """Redis answered."""
        self.contact = time.monotonic()
        if self.down_since is not None:
            self.down_since = None
            logger.warning("otelstream: Redis at %s answers again", self.url)

    def down(self, exc: BaseException) -> None:
        """Redis did not answer: say so once per outage, tell the listeners."""
        if self.down_since is None:
            self.down_since = time.monotonic()
            warn_limited(
                "otelstream: Redis at %s cannot be reached (%s): check that it is running and "
                "reachable; meanwhile events are counted lost, streams end with events_lost "
                "and the API answers 503",
                self.url,
                exc,
            )
        for listener in self.on_down:
            listener()

    async def pubsub(self) -> Any:
        """A pub/sub client; in a cluster, on one node (PUBLISH reaches every node). It is not
        retried by redis-py: its user subscribes again, and knows it did."""
        if not self.cluster:
            return self.writer.pubsub(ignore_subscribe_messages=True)
        await self.query.initialize()
        node = self.query.get_default_node()
        return self.query.pubsub(node=node, ignore_subscribe_messages=True)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        otel_context.attach(self._quiet)
        asyncio.set_event_loop(loop)
        self._connect()
        ours = [
            loop.create_task(task(self)) for task in self.tasks
        ]  # held: the loop's refs are weak
        try:
            loop.run_forever()
        finally:
            # Every task, not only ours: a call still waiting on Redis at stop must end here, on
            # a running loop, or its connection is closed later by the collector, on none.
            pending = asyncio.all_tasks(loop) | set(ours)
            for running in pending:
                running.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(self._close())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _connect(self) -> None:
        # Reads are retried once on a new connection: after Redis restarts every pooled
        # connection is stale, and that is no outage. Writes are not (a script is not
        # idempotent): the writer pings first instead.
        once = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
        common: dict[str, Any] = {
            "protocol": 2,  # the replies' shapes are the same from redis-py 5 to 8
            "socket_connect_timeout": self.socket_timeout,
            "socket_timeout": self.socket_timeout,
        }
        if self.cluster:

            def cluster(retry: Retry, decode: bool, timeout: float) -> RedisCluster:
                return RedisCluster.from_url(
                    self.url,
                    retry=retry,
                    decode_responses=decode,
                    max_connections=_MAX_CONNECTIONS,
                    **{**common, "socket_timeout": timeout},
                )

            self.query = cluster(once, True, self.socket_timeout)
            self.writer = cluster(Retry(NoBackoff(), 0), True, self.socket_timeout)
            self.reader = cluster(once, False, self.socket_timeout)  # polls: never blocks
            return

        def pool(retry: Retry, size: int) -> Redis:
            return Redis.from_pool(
                BlockingConnectionPool.from_url(
                    self.url,
                    max_connections=size,
                    timeout=_POOL_WAIT_S,
                    retry=retry,
                    decode_responses=True,
                    **common,
                )
            )

        # a bounded pool whose callers wait for a free connection: a burst of streams opening
        # at once (each looks its run up) must queue, not fail with "too many connections"
        self.query = pool(once, _MAX_CONNECTIONS)
        self.writer = pool(Retry(NoBackoff(), 0), 3)  # the writer (pings, pipelines), pub/sub
        self.reader = Redis.from_url(
            self.url,
            single_connection_client=True,
            retry=once,
            redis_connect_func=self._on_reader_connect,
            **{**common, "socket_timeout": self.block_s + self.socket_timeout},
        )

    async def _on_reader_connect(self, connection: Any) -> None:
        """Learn the reader connection's id, so a new run can interrupt its blocking XREAD."""
        await connection.on_connect()
        await connection.send_command("CLIENT", "ID")
        self.reader_id = int(await connection.read_response())

    async def _close(self) -> None:
        for client in (self.query, self.writer, self.reader):
            with contextlib.suppress(Exception):  # closing: nothing left to tell
                await client.aclose()


def stopping() -> bool:
    """Whether the I/O loop's task running this was cancelled (the hub is closing). Its loops
    ask before each turn: redis-py (8.2) can swallow the CancelledError that reaches a command
    in flight, and a loop that went on would hold the hub's close for its whole bound and leave
    the I/O thread running after it."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def wait_within(seconds: float, awaitable: Awaitable[Any]) -> None:
    """Wait for `awaitable`, at most `seconds`. `asyncio.timeout`, not `asyncio.wait_for`: on
    Python 3.11, `wait_for` returns when what it waits for is done as its task is cancelled,
    and the cancellation is lost."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await awaitable


async def io_reset(client: Any) -> None:
    """Drop a client's pooled connections: the next command opens a new one."""
    with contextlib.suppress(Exception):
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            await pool.disconnect()
