"""The runs every process sharing a Redis knows: the bounds on active and finished runs, and
cancel requests, kept in keys of their own hash slot (`{runs}`) beside the runs' keys.

- `PREFIX:{runs}:active`, a sorted set of running runs by start time (ms): a run is streamed
  only if fewer than `max_active_runs` are running, across every worker;
- `PREFIX:{runs}:finished`, a sorted set of finished runs by end time: past
  `max_finished_runs` the oldest are deleted (their keys, at once), as the memory hub does;
- `PREFIX:{runs}:cancel`, a pub/sub channel: `DELETE /runs/{id}` on any worker reaches the
  process that runs it, whose runner cancels it at its next span. The run's hash gets
  `cancel` too, so that it says so (`get_run`) after the message has gone by.

A run's keys and these are in different slots (in Redis Cluster, maybe on different nodes),
so they are written in separate commands: each script touches one slot only.
"""

from __future__ import annotations

import time
from typing import Any, Final

from redis.asyncio import Redis

from otelstream.hubs._redis_codec import meta_key, stream_key

# KEYS: active. ARGV: run id, now (ms), max active runs, the start (ms) before which an entry
# is stale (its process died without ending it). Returns 1 when the run may stream.
ADMIT: Final = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""

# KEYS: active, finished. ARGV: run id, now (ms), max finished runs, the end (ms) before which
# a finished run has expired. Returns the run ids evicted, whose keys the caller deletes.
RETIRE: Final = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over <= 0 then return {} end
local evicted = {}
for i, v in ipairs(redis.call('ZPOPMIN', KEYS[2], over)) do
  if i % 2 == 1 then table.insert(evicted, v) end
end
return evicted
"""

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


class RunIndex:
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
        self.active = f"{prefix}:{{runs}}:active"
        self.finished = f"{prefix}:{{runs}}:finished"
        self.channel = f"{prefix}:{{runs}}:cancel"
        self.max_active = max_active
        self.max_finished = max_finished
        self.running_ttl_ms = int(running_ttl_s * 1000)
        self.retention_ms = int(retention_s * 1000)

    async def admit(self, client: Redis, run_ids: list[str]) -> list[str]:
        """Ask for a place for each new run; returns those refused (their start is marked)."""
        now = _now_ms()
        async with client.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                stale = now - self.running_ttl_ms
                pipe.eval(ADMIT, 1, self.active, run_id, now, self.max_active, stale)
            admitted: list[Any] = await pipe.execute()
        refused = [run_id for run_id, ok in zip(run_ids, admitted, strict=True) if not ok]
        if refused:
            async with client.pipeline(transaction=False) as pipe:
                for run_id in refused:
                    pipe.eval(REFUSE, 1, meta_key(self.prefix, run_id), self.retention_ms or 1)
                await pipe.execute()
        return refused

    async def retire(self, client: Redis, run_ids: list[str]) -> None:
        """Runs that ended: count them finished, delete the oldest past the bound."""
        now = _now_ms()
        async with client.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                expired = now - self.retention_ms
                keys = (self.active, self.finished)
                pipe.eval(RETIRE, 2, *keys, run_id, now, self.max_finished, expired)
            evicted: list[list[str]] = await pipe.execute()
        gone = [run_id for runs in evicted for run_id in runs]
        if gone:
            async with client.pipeline(transaction=False) as pipe:
                for run_id in gone:  # one slot per run: one DEL each
                    pipe.delete(stream_key(self.prefix, run_id), meta_key(self.prefix, run_id))
                await pipe.execute()

    async def cancel(self, client: Redis, run_id: str) -> bool:
        """Mark the run cancelled and tell every process; False if it is not running."""
        marked = await client.eval(CANCEL, 1, meta_key(self.prefix, run_id))
        if not marked:
            return False
        await client.publish(self.channel, run_id)
        return True


def _now_ms() -> int:
    return int(time.time() * 1000)
