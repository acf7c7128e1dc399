"""The Redis hub's writer: a bounded buffer that `publish` appends to, drained by the I/O loop
in pipelined batches, as the OpenTelemetry SDK's `BatchSpanProcessor` drains spans.

Each run's events of a batch are one call of the PUBLISH script (see `_codec.py`), which
gives each the run's next seq in Redis, so seqs stay 1..N across processes. Nothing here ever
blocks the publisher: past `redis_buffer_events` an event is counted lost. An
event that cannot be encoded or that Redis refuses costs only itself: it is
counted lost, its run's streams are told (`events_lost`), the batch goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from typing import Any, Final

from redis.exceptions import NoScriptError

from otelstream._errors import report
from otelstream.events import PIPELINE_COMPLETED, PIPELINE_STARTED, Event
from otelstream.hubs._wake import Wakeup
from otelstream.hubs.redis._codec import MARK_LOST, PUBLISH, encode, meta_key, stream_key
from otelstream.hubs.redis._loop import UNREACHABLE, IOLoop, io_reset
from otelstream.hubs.redis._registry import RunRegistry

BATCH: Final = 1_000
"""Events per pipelined round trip."""
_BACKOFF_S: Final = (0.05, 0.25)
"""Between retries while Redis is down: short, so that runs go on soon after it is back."""
_FRESH_S: Final = 0.25
"""The writer pings first when it has not reached Redis for this long (stale connections)."""
_SHA = hashlib.sha1(PUBLISH.encode()).hexdigest()

Item = tuple[str, Event]


class Writer:
    """Owned by one hub; `put` from any thread, everything else on the I/O loop."""

    def __init__(
        self,
        io: IOLoop,
        registry: RunRegistry,
        *,
        prefix: str,
        capacity: int,
        maxlen: int,
        running_ttl_ms: int,
        finished_ttl_ms: int,
        keep: int,
        lose: Callable[[str, int, str], None],
    ) -> None:
        self.io, self.registry, self.prefix = io, registry, prefix
        self.capacity = capacity
        self._common = (str(maxlen), str(running_ttl_ms), str(max(finished_ttl_ms, 1)))
        self._maxlen = str(maxlen)
        self._keep = keep
        self._lose = lose  # the hub's: count, warn, tell the run's streams
        self.dropped_events = 0
        """Events dropped on purpose: after their run's end, or of a run over the bound."""
        self.buffer: deque[Item | asyncio.Future[None]] = deque()
        self.wake = asyncio.Event()
        self.writing = False
        self.lost_events = 0
        """Events that never reached Redis: buffer full, Redis down, or their run vanished."""
        self.unmarked: OrderedDict[str, int] = OrderedDict()  # lost events awaiting a marker
        self.stored: OrderedDict[str, None] = OrderedDict()  # runs this process wrote events of
        self._opened: OrderedDict[str, None] = OrderedDict()  # started here, until stored
        self._lock = threading.Lock()
        self._kick: _Kick | None = None  # wakes `run` on the I/O loop, once per burst
        io.tasks.append(self.run)
        io.on_fork.append(self._forked)

    def _forked(self) -> None:
        self.buffer.clear()
        self.wake = asyncio.Event()
        self._kick = None

    # -- from any thread ----------------------------------------------------------------------

    def put(self, run_id: str, event: Event) -> bool:
        """Append and wake the writer (at most one wake-up pending); False when full."""
        loop = self.io.ensure()
        if event.type == PIPELINE_STARTED:
            self._remember(self._opened, run_id)
        if len(self.buffer) >= self.capacity:
            return False
        self.buffer.append((run_id, event))
        kick = self._kick
        if kick is None or kick.loop is not loop:  # the first put, or the first after a fork
            kick = self._kick = _Kick(loop, self.wake)
        kick.notify()
        return True

    def _remember(self, runs: OrderedDict[str, None], run_id: str) -> None:
        with self._lock:
            runs[run_id] = None
            while len(runs) > self._keep:
                runs.popitem(last=False)

    def running(self) -> list[str]:
        """The runs started here whose end is not stored yet."""
        with self._lock:
            return list(self._opened)

    def started_here(self, run_id: str) -> bool:
        """Whether this process started the run and its end is not stored yet: such a run
        exists even while its first events are still on their way to Redis."""
        return run_id in self._opened

    def lost(self, run_id: str, count: int) -> None:
        """Count events that never reached Redis and queue a marker for other processes."""
        with self._lock:
            self.lost_events += count
        self.mark(run_id, count)

    # -- on the I/O loop ----------------------------------------------------------------------

    async def flush(self, timeout: float) -> None:
        """Wait (up to `timeout`) until what was put before is written (or found unwritable)."""
        if not self.buffer and not self.writing:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer.append(future)
        self.wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(future, timeout)

    async def run(self, io: IOLoop) -> None:
        client = io.writer
        backoff = 0.0
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.buffer:
                if backoff:  # Redis failed: events wait in the (bounded) buffer meanwhile
                    await asyncio.sleep(backoff)
                stale = time.monotonic() - io.contact > _FRESH_S
                if (backoff or stale) and not await self._reachable(client):
                    backoff = min(max(backoff * 2, _BACKOFF_S[0]), _BACKOFF_S[1])
                    self._release()
                    continue
                backoff = 0.0
                batch, barriers = self._take()
                self.writing = True
                try:
                    if batch and not await self._write(client, batch):
                        backoff = _BACKOFF_S[0]
                    elif self.unmarked:
                        await self._write_markers(client)
                except Exception:
                    report("RedisHub: writing events")
                finally:
                    self.writing = False
                for barrier in barriers:
                    if not barrier.done():
                        barrier.set_result(None)

    async def _reachable(self, client: Any) -> bool:
        """PING before writing after a pause: a connection that went stale while Redis
        restarted is dropped here, not found out by losing a batch of a new run's events."""
        for attempt in range(2):
            try:
                await client.ping()
            except UNREACHABLE as exc:
                await io_reset(client)
                if attempt:
                    self.io.down(exc)
            else:
                self.io.up()
                return True
        return False

    def _take(self) -> tuple[list[Item], list[asyncio.Future[None]]]:
        """The next batch. It ends before a run's start that follows another run's end: that
        run's place is given back (`retire`) before the next is asked for (`admit`)."""
        batch: list[Item] = []
        barriers: list[asyncio.Future[None]] = []
        buffer, ended = self.buffer, False
        while buffer and len(batch) < BATCH:
            item = buffer[0]
            if isinstance(item, asyncio.Future):
                barriers.append(item)
            else:
                kind = item[1].type
                if ended and kind == PIPELINE_STARTED:
                    break
                ended = ended or kind == PIPELINE_COMPLETED
                batch.append(item)
            buffer.popleft()
        return batch, barriers

    def _release(self) -> None:
        """While Redis is down, `flush` stops waiting for the buffer."""
        for item in self.buffer:
            if isinstance(item, asyncio.Future) and not item.done():
                item.set_result(None)

    async def _write(self, client: Any, batch: list[Item]) -> bool:
        """Admission, then one pipelined round trip; False when Redis failed (all lost)."""
        try:
            batch = await self._admit(client, batch)
            results, sent = await self._execute(client, batch)
            missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
            if missing:  # Redis restarted empty: load the script, send those again
                await client.script_load(PUBLISH)
                again, _ = await self._execute(client, [sent[i] for i in missing])
                for i, result in zip(missing, again, strict=True):
                    results[i] = result
        except UNREACHABLE as exc:
            self.io.down(exc)
            await io_reset(client)
            for run_id, count in Counter(run_id for run_id, _ in batch).items():
                self._lose(run_id, count, "Redis did not answer")
            return False
        self.io.up()
        self._settle(sent, results)
        ended = [
            (run_id, event)
            for (run_id, event), result in zip(sent, results, strict=True)
            if event.type == PIPELINE_COMPLETED and isinstance(result, int) and result > 0
        ]
        if ended:
            with contextlib.suppress(*UNREACHABLE):  # the runs' keys expire all the same
                await self.registry.retire(client, ended)
        return True

    async def _execute(self, client: Any, batch: list[Item]) -> tuple[list[Any], list[Item]]:
        """One script call per run of the batch, pipelined; a result per event sent."""
        by_run: dict[str, tuple[list[Item], list[bytes]]] = {}
        for item in batch:
            try:
                encoded = encode(item[1])
            except Exception as exc:
                self._lose(item[0], 1, f"it could not be encoded ({exc!r})")
                continue
            items, args = by_run.setdefault(item[0], ([], []))
            items.append(item)
            args.extend(encoded)
        if not by_run:
            return [], []
        async with client.pipeline(transaction=False) as pipe:
            for run_id, (_, args) in by_run.items():
                stored = "1" if run_id in self.stored else "0"
                keys = (stream_key(self.prefix, run_id), meta_key(self.prefix, run_id))
                # `execute_command`: a cluster pipeline has no `evalsha`, but routes it by key
                pipe.execute_command("EVALSHA", _SHA, 2, *keys, *self._common, stored, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        sent: list[Item] = []
        results: list[Any] = []
        for (items, _), reply in zip(by_run.values(), replies, strict=True):
            sent.extend(items)
            results.extend(reply if isinstance(reply, list) else [reply] * len(items))
        return results, sent

    async def _admit(self, client: Any, batch: list[Item]) -> list[Item]:
        """The batch without the events of runs over `max_active_runs` (see `RunRegistry`)."""
        kept, refused = await self.registry.admit_batch(client, batch)
        for run_id in refused:
            with self._lock:
                self._opened.pop(run_id, None)
        self.dropped_events += len(batch) - len(kept)
        return kept

    def _settle(self, sent: list[Item], results: list[Any]) -> None:
        for (run_id, event), result in zip(sent, results, strict=True):
            if isinstance(result, Exception) or result == -1:
                why = "its run vanished from Redis" if result == -1 else str(result)
                self._lose(run_id, 1, why)
            elif result == 0:
                self.dropped_events += 1
            elif event.type == PIPELINE_COMPLETED:  # Redis knows it now, and forgets it
                with self._lock:
                    self.stored.pop(run_id, None)
                    self._opened.pop(run_id, None)
            elif run_id not in self.stored:
                self._remember(self.stored, run_id)

    def mark(self, run_id: str, count: int) -> None:
        """Queue a loss marker, so that other processes' streams of the run are told."""
        with self._lock:
            self.unmarked[run_id] = self.unmarked.get(run_id, 0) + count
            while len(self.unmarked) > self._keep:
                self.unmarked.popitem(last=False)

    async def _write_markers(self, client: Any) -> None:
        with self._lock:
            pending, self.unmarked = self.unmarked, OrderedDict()
        written = False
        with contextlib.suppress(*UNREACHABLE):
            async with client.pipeline(transaction=False) as pipe:
                for run_id, count in pending.items():
                    keys = (stream_key(self.prefix, run_id), meta_key(self.prefix, run_id))
                    pipe.eval(MARK_LOST, 2, *keys, count, self._maxlen)
                await pipe.execute(raise_on_error=False)
                written = True
        if not written:  # try again after the next batch
            for run_id, count in pending.items():
                self.mark(run_id, count)


class _Kick(Wakeup):
    """The shared coalescing wake-up, setting the writer's event on the I/O loop."""

    __slots__ = ("event",)

    def __init__(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        super().__init__(loop)
        self.event = event

    def _wake(self) -> None:
        self.scheduled = False
        self.event.set()
