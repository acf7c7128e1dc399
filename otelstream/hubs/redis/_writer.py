"""The Redis hub's writer: drains the bounded buffer that `publish` appends to (`_buffer.py`)
on the I/O loop in pipelined batches, as the OpenTelemetry SDK's `BatchSpanProcessor` drains
spans.

Each run's events of a batch are one call of the PUBLISH script (see `_codec.py`), which
gives each the run's next seq in Redis, so seqs stay 1..N across processes. Nothing here ever
blocks the publisher: past `redis_buffer_bytes` an event is counted lost. An
event that cannot be encoded or that Redis refuses costs only itself: it is
counted lost, its run's streams are told (`events_lost`), the batch goes on. What a run's
end records once it is stored (the runs list, its stream, its history) is `_run_end.py`'s,
the markers of lost events `_markers.py`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final

from redis.exceptions import NoScriptError

from otelstream import _metrics
from otelstream._errors import report
from otelstream.events import PIPELINE_COMPLETED, PIPELINE_STARTED, Event
from otelstream.hubs.redis._buffer import Buffer, Item
from otelstream.hubs.redis._codec import (
    PUBLISH,
    encode,
    meta_key,
    stream_key,
)
from otelstream.hubs.redis._loop import UNREACHABLE, IOLoop, io_reset, stopping, wait_within
from otelstream.hubs.redis._markers import LossMarkers
from otelstream.hubs.redis._registry import RunRegistry
from otelstream.hubs.redis._run_end import RunEnds, count_end

_BACKOFF_S: Final = (0.05, 0.25)
"""Between retries while Redis is down: short, so that runs go on soon after it is back."""
_FRESH_S: Final = 0.25
"""The writer pings first when it has not reached Redis for this long (stale connections)."""
_SHA = hashlib.sha1(PUBLISH.encode()).hexdigest()


class Writer:
    """Owned by one hub; `put` from any thread, everything else on the I/O loop."""

    def __init__(
        self,
        io: IOLoop,
        registry: RunRegistry,
        *,
        prefix: str,
        capacity: int | None,
        capacity_bytes: int,
        maxlen: int,
        running_ttl_ms: int,
        finished_ttl_ms: int,
        keep: int,
        lose: Callable[[str, int, str], None],
    ) -> None:
        self.io, self.registry, self.prefix = io, registry, prefix
        self.buffer = Buffer(io, capacity, capacity_bytes)
        self.publish_args = (str(maxlen), str(running_ttl_ms), str(max(finished_ttl_ms, 1)))
        self._keep = keep
        self._lose = lose  # the hub's: count, warn, tell the run's streams
        self.dropped_events = 0
        """Events dropped on purpose: after their run's end, or of a run over the bound."""
        self.writing = False
        self.lost_events = 0
        """Events that never reached Redis: buffer full, Redis down, or their run vanished."""
        self.markers = LossMarkers(prefix, maxlen, keep)  # told to the run's other streams
        self.stored: OrderedDict[str, None] = OrderedDict()  # runs this process wrote events of
        self._opened: OrderedDict[str, None] = OrderedDict()  # started here, until stored
        self.counted: OrderedDict[str, None] = OrderedDict()  # starts stored: active runs
        self._lock = threading.Lock()
        self.taken: OrderedDict[str, None] = OrderedDict()  # runs another worker ended for us
        self.ends = RunEnds(registry, prefix, maxlen)  # what it tells of the runs' ends
        self.before_write: Callable[[Any], Awaitable[None]] | None = None  # the lease's check
        io.tasks.append(self.run)

    # -- from any thread ----------------------------------------------------------------------

    def put(self, run_id: str, event: Event) -> bool:
        """Append and wake the writer (at most one wake-up pending); False when full: the
        event would take the buffer past `capacity_bytes` (or `capacity` events)."""
        if event.type == PIPELINE_STARTED:
            self._remember(self._opened, run_id)
        return self.buffer.put(run_id, event)

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

    def abandon(self, run_ids: list[str]) -> None:
        """Another worker ended these runs (this process's lease lapsed): publish no more."""
        with self._lock:
            for run_id in run_ids:
                self.taken[run_id] = None
                self._opened.pop(run_id, None)
                self.stored.pop(run_id, None)
            while len(self.taken) > self._keep:
                self.taken.popitem(last=False)

    def lost(self, run_id: str, count: int) -> None:
        """Count events that never reached Redis and queue a marker for other processes."""
        with self._lock:
            self.lost_events += count
        _metrics.dropped("lost", count)
        self.markers.mark(run_id, count)

    # -- on the I/O loop ----------------------------------------------------------------------

    async def flush(self, timeout: float) -> None:
        """Wait (up to `timeout`) until what was put before is written (or found unwritable)."""
        if not self.buffer and not self.writing:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer.barrier(future)
        await wait_within(timeout, future)

    async def run(self, io: IOLoop) -> None:
        client = io.writer
        backoff = 0.0
        while not stopping():
            if self.ends.unretired or self.ends.unrevealed:  # Redis failed telling an end
                await wait_within(_BACKOFF_S[1], self.buffer.wake.wait())
                with contextlib.suppress(*UNREACHABLE):
                    await self.ends.finish(client)
            else:
                await self.buffer.wake.wait()
            self.buffer.wake.clear()
            while self.buffer:
                if backoff:  # Redis failed: events wait in the (bounded) buffer meanwhile
                    await asyncio.sleep(backoff)
                stale = time.monotonic() - io.contact > _FRESH_S
                if (backoff or stale) and not await self._reachable(client):
                    backoff = min(max(backoff * 2, _BACKOFF_S[0]), _BACKOFF_S[1])
                    self.buffer.release()
                    continue
                backoff = 0.0
                batch, barriers = self.buffer.take()
                self.writing = True
                try:
                    if batch and not await self._write(client, batch):
                        backoff = _BACKOFF_S[0]
                    elif self.markers.unmarked:
                        await self.markers.write(client)
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

    async def _write(self, client: Any, batch: list[Item]) -> bool:
        """Admission, then one pipelined round trip; False when Redis failed (all lost)."""
        try:
            if self.before_write is not None:  # after a pause: was a run ended for us?
                await self.before_write(client)
            batch = await self._admit(client, batch)
            batch = await self.ends.end_open_tasks(client, batch, self.taken)
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
        await self.ends.stored(client, sent, results)
        return True

    async def _execute(self, client: Any, batch: list[Item]) -> tuple[list[Any], list[Item]]:
        """One script call per run of the batch, pipelined; a result per event sent."""
        by_run: dict[str, tuple[list[Item], list[bytes]]] = {}
        taken = self.taken
        for item in batch:
            if taken and item[0] in taken:
                self.dropped_events += 1
                _metrics.dropped("refused")
                continue
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
                pipe.execute_command("EVALSHA", _SHA, 2, *keys, *self.publish_args, stored, *args)
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
        if len(batch) > len(kept):
            self.dropped_events += len(batch) - len(kept)
            _metrics.dropped("refused", len(batch) - len(kept))
        return kept

    def _settle(self, sent: list[Item], results: list[Any]) -> None:
        for (run_id, event), result in zip(sent, results, strict=True):
            if isinstance(result, Exception) or result == -1:
                why = "its run vanished from Redis" if result == -1 else str(result)
                self._lose(run_id, 1, why)
            elif result == 0:
                self.dropped_events += 1
                _metrics.dropped("refused")
            elif event.type == PIPELINE_COMPLETED:  # Redis knows it now, and forgets it
                with self._lock:
                    self.stored.pop(run_id, None)
                    self._opened.pop(run_id, None)
                    counted = self.counted.pop(run_id, 0) is None  # its start: an active run
                count_end(event, counted)
            else:
                if event.type == PIPELINE_STARTED:
                    _metrics.run_started(event.name)
                    self._remember(self.counted, run_id)
                if run_id not in self.stored:
                    self._remember(self.stored, run_id)
