"""The runs every process sharing a Redis knows: the bounds on active and finished runs, the
runs list and its lifecycle stream, and cancel requests; in keys of one hash slot (`{runs}`).

- `PREFIX:{runs}:active`, a sorted set of running runs by start time (ms): a run is streamed
  only if fewer than `max_active_runs` are running, across every worker;
- `PREFIX:{runs}:finished`, finished runs by end time: past `max_finished_runs` (or
  `run_retention_seconds`) the oldest are deleted, keys and all, as the memory hub does;
- `PREFIX:{runs}:list` (start order, the cursor of `list_runs`) and `PREFIX:{runs}:summary`
  (run id -> its summary JSON): the runs list, newest first;
- `PREFIX:{runs}:lifecycle`, a stream of `run_started` / `run_ended` (entry `N-0` has seq N),
  fed by the scripts that admit and retire runs: the runs stream, read as a run is; its seqs
  (`PREFIX:{runs}:counter`) start at the microsecond the counter was made, an epoch;
- `PREFIX:{runs}:cancel`, a pub/sub channel: `DELETE /runs/{id}` on any worker reaches the
  process that runs it. The run's hash gets `cancel` too, so it is known afterwards.

A run's keys and these are in different slots (in Redis Cluster maybe on different nodes),
so they are written by separate commands: each script touches one slot only.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from redis.asyncio import Redis

from otelstream._errors import warn_limited
from otelstream.events import PIPELINE_STARTED, Event, _wire
from otelstream.hubs._runs_list import parse_cursor
from otelstream.hubs.redis._codec import meta_key, stream_key

# The lifecycle seq starts at the time (µs) the counter was made, not at 1: a Redis that lost
# its data starts above every id it gave before, so a client resuming with an old id gets the
# whole stream again instead of silence. %d, as Lua's own number-to-text has 14 digits only.
_ANNOUNCE = """
if redis.call('EXISTS', KEYS[6]) == 0 then redis.call('SET', KEYS[6], ARGV[2] .. '000') end
local n = string.format('%d', redis.call('INCR', KEYS[6]))
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[7], n .. '-0', 'e', ARGV[6] .. n .. ',' ..
  string.sub(summary, 2))
"""

# KEYS: active, finished, list, summary, lifecycle, counter, workers, owners. ARGV: run id,
# now (ms), max active runs, the start (ms) before which an entry is stale (its keys expired),
# the summary JSON, the lifecycle event's JSON up to its seq, the lifecycle stream's length,
# the admitting worker (the run's owner) and its lease span in ms (see `_owners.py`: the
# admission renews its lease, so a run's owner is always known alive when it starts).
# 1: it may stream.
ADMIT: Final = (
    """
for _, stale in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])) do
  redis.call('ZREM', KEYS[1], stale)  -- its keys expired: out of the bound and the list
  redis.call('ZREM', KEYS[3], stale)
  redis.call('HDEL', KEYS[4], stale)
  redis.call('HDEL', KEYS[8], stale)
end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZADD', KEYS[7], now + tonumber(ARGV[9]), ARGV[8])
redis.call('HSET', KEYS[8], ARGV[1], ARGV[8])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local summary = ARGV[5]
redis.call('HSET', KEYS[4], ARGV[1], summary)
"""
    + _ANNOUNCE
    + """
redis.call('ZADD', KEYS[3], n, ARGV[1])
return 1
"""
)

# KEYS: as ADMIT. ARGV: run id, now (ms), max finished runs, the end (ms) before which a run
# has expired, its end (`"status":...` to the closing brace), the lifecycle event's JSON up
# to its seq, the stream's length. Returns the run ids evicted: the caller deletes their keys.
# A run retired already (its end told twice: a reply lost, a claimer and its owner) is left be.
RETIRE: Final = (
    """
redis.call('HDEL', KEYS[8], ARGV[1])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 and redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return {}
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
local summary = redis.call('HGET', KEYS[4], ARGV[1])
if summary then
  summary = string.sub(summary, 1, string.find(summary, ',"status":', 1, true)) .. ARGV[5]
  redis.call('HSET', KEYS[4], ARGV[1], summary)
"""
    + _ANNOUNCE
    + """
end
local evicted = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then
  for i, v in ipairs(redis.call('ZPOPMIN', KEYS[2], over)) do
    if i % 2 == 1 then table.insert(evicted, v) end
  end
end
for _, v in ipairs(evicted) do
  redis.call('ZREM', KEYS[3], v)
  redis.call('HDEL', KEYS[4], v)
end
return evicted
"""
)

# KEYS: meta. ARGV: TTL in ms. A run refused for the bound: later events of it (from any
# process) find `done` and are dropped; it has no `seq`, so it is unknown to readers.
REFUSE: Final = """
redis.call('HSET', KEYS[1], 'done', 0, 'refused', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# KEYS: meta. Marks a running run cancelled; 0 when it is unknown or has ended.
CANCEL: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'done') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'cancel', 1)
return 1
"""

_PAGE_READ: Final = 200
"""Summaries read per round trip while a filtered page fills."""


class RunRegistry:
    """The cross-worker bookkeeping of runs, for the hub's I/O loop."""

    def __init__(
        self,
        prefix: str,
        *,
        max_active: int,
        max_finished: int,
        running_ttl_s: float,
        retention_s: float,
    ) -> None:
        self.prefix = prefix
        names = ["active", "finished", "list", "summary", "lifecycle", "counter"]
        names += ["workers", "owners"]  # see `_owners.py`
        self.keys = [f"{prefix}:{{runs}}:{name}" for name in names]
        self.lifecycle = self.keys[4]
        self.counter = self.keys[5]  # the seq of the lifecycle stream's newest event
        self.channel = f"{prefix}:{{runs}}:cancel"
        self.max_active = max_active
        self.max_finished = max_finished
        self.stream_length = 2 * (max_active + max_finished)
        self.running_ttl_ms = int(running_ttl_s * 1000)
        self.retention_ms = int(retention_s * 1000)
        self.refused: OrderedDict[str, None] = OrderedDict()  # runs over max_active_runs
        self.owner: Callable[[], tuple[str, str]] = lambda: ("", "1")
        """This worker and its lease span (ms), given to `ADMIT` (`Owners` sets it)."""

    async def admit_batch(
        self, client: Redis, batch: list[tuple[str, Event]]
    ) -> tuple[list[tuple[str, Event]], list[str]]:
        """The batch without the events of runs refused for `max_active_runs`, counted across
        every process sharing the Redis (those are traced, not streamed); the runs refused."""
        starts = [(run_id, event) for run_id, event in batch if event.type == PIPELINE_STARTED]
        refused = await self.admit(client, starts) if starts else []
        for run_id in refused:
            self.refused[run_id] = None
            while len(self.refused) > self.max_active + self.max_finished:
                self.refused.popitem(last=False)
            warn_limited(
                "otelstream: %d runs are streaming across the processes sharing this Redis "
                "(max_active_runs): run %s is traced but not streamed",
                self.max_active,
                run_id,
            )
        if not self.refused:
            return batch, refused
        return [item for item in batch if item[0] not in self.refused], refused

    async def admit(self, client: Redis, starts: list[tuple[str, Event]]) -> list[str]:
        """Ask for a place for each new run; returns those refused (their start is marked)."""
        now = _now_ms()
        async with client.pipeline(transaction=False) as pipe:
            for run_id, start in starts:
                summary = _wire.run_summary(run_id, start.name, start.time_ns)
                summary_json = _wire.utf8(_wire.to_json(summary))
                stale = now - self.running_ttl_ms
                args = (run_id, now, self.max_active, stale, summary_json)
                lifecycle = self._event("run_started")
                pipe.eval(ADMIT, 8, *self.keys, *args, *lifecycle, *self.owner())
            admitted: list[Any] = await pipe.execute()
        refused = [run_id for (run_id, _), ok in zip(starts, admitted, strict=True) if not ok]
        if refused:
            async with client.pipeline(transaction=False) as pipe:
                for run_id in refused:
                    pipe.eval(REFUSE, 1, meta_key(self.prefix, run_id), self.retention_ms or 1)
                await pipe.execute()
        return refused

    async def retire(self, client: Redis, ends: list[tuple[str, Event]]) -> None:
        """Runs that ended: count them finished, delete the oldest past the bound."""
        now = _now_ms()
        async with client.pipeline(transaction=False) as pipe:
            for run_id, end in ends:
                status = end.status or "success"
                end_json = _wire.summary_end(
                    status, end.duration_ns, end.error_type, end.errors_logged
                )
                expired = now - self.retention_ms
                args = (run_id, now, self.max_finished, expired, end_json)
                pipe.eval(RETIRE, 8, *self.keys, *args, *self._event("run_ended"))
            evicted: list[list[str]] = await pipe.execute()
        gone = [run_id for runs in evicted for run_id in runs]
        if gone:
            async with client.pipeline(transaction=False) as pipe:
                for run_id in gone:  # one slot per run: one DEL each
                    pipe.delete(stream_key(self.prefix, run_id), meta_key(self.prefix, run_id))
                await pipe.execute()

    def _event(self, kind: str) -> tuple[str, int]:
        return _wire.lifecycle_head(kind), self.stream_length

    async def page(
        self, client: Redis, pipeline: str | None, status: str | None, limit: int, cursor: Any
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to `limit` summaries, newest first, started before `cursor`; the next cursor."""
        before = parse_cursor(cursor)
        top: Any = f"({before}" if before is not None else "+inf"
        runs: list[dict[str, Any]] = []
        last: int | None = None
        while True:
            found: Any = await client.zrevrangebyscore(
                self.keys[2], top, "-inf", start=0, num=_PAGE_READ, withscores=True
            )
            if not found:
                return runs, None
            summaries = await client.hmget(self.keys[3], [run_id for run_id, _ in found])
            for (_, number), text in zip(found, summaries, strict=True):
                summary = None if text is None else _wire.parse(text)
                if summary is None or pipeline not in (None, summary["name"]):
                    continue
                if status not in (None, summary["status"]):
                    continue
                if len(runs) == limit:
                    return runs, None if last is None else str(last)
                runs.append(summary)
                last = int(number)
            top = f"({int(found[-1][1])}"

    async def cancel(self, client: Redis, run_id: str) -> bool:
        """Mark the run cancelled and tell every process; False if it is not running."""
        marked = await client.eval(CANCEL, 1, meta_key(self.prefix, run_id))
        if not marked:
            return False
        await client.publish(self.channel, run_id)
        return True


def _now_ms() -> int:
    return int(time.time() * 1000)
