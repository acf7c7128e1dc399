"""Owners and leases: which process runs each run, whether it is alive, and ending the runs of
one that is gone, as failed (`WorkerLost`), exactly once, across every process sharing a Redis.

Two keys in the `{runs}` slot, beside the registry's (see `_registry.py`):

- `PREFIX:{runs}:workers`, a sorted set: worker id -> when its lease lapses (Redis's clock, in
  ms, so hosts whose clocks disagree still agree on who is late). A worker renews it every
  third of `worker_lease_seconds` on the hub's I/O loop (never on the span hot path), and
  admitting a run renews it too (`ADMIT`). It lapses a lease *and* a renewal interval after
  the last renewal, so a pause shorter than the lease (a long GC, SIGSTOP) is never a death.
- `PREFIX:{runs}:owners`, a hash: run id -> its owner's worker id, set when the run is
  admitted, removed when it retires. A worker ending another's run first writes `!` and its
  own id there: that is the claim, made in one script, so exactly one worker makes it; the
  claim is retried until the run's end is stored, and passes on if the claimer dies too.

The run's end itself goes through the run's PUBLISH script (its own slot), which refuses any
event after a `pipeline_completed`: so one terminal event, whoever writes it. A worker that
comes back after its lease lapsed finds its runs owned by another (`BEAT` says which), says so
in its log and publishes nothing more into them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any, Final

from otelstream._errors import logger, report, warn_limited
from otelstream.events import PIPELINE_COMPLETED, Event
from otelstream.hubs._run_tree import WORKER_LOST
from otelstream.hubs.redis._codec import (
    PUBLISH,
    decode,
    encode,
    meta_key,
    stream_key,
    unrevealed_end,
)
from otelstream.hubs.redis._loop import UNREACHABLE, IOLoop
from otelstream.hubs.redis._registry import RunRegistry
from otelstream.hubs.redis._tree import read_tree
from otelstream.hubs.redis._writer import reveal

_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# KEYS: workers, owners, active, finished, robbed. ARGV: this worker, its lease + interval (ms),
# a run id to look at alone ('' for none), how long a claim is remembered (ms), the number N of
# runs this worker thinks it owns, those N, then runs it claimed and has not ended yet. Renews
# the lease; finds this worker's runs that another took, only when another did (it is in
# `robbed`: so a renewal costs O(1), not a look-up a run, and a run this worker retired itself
# meanwhile is never mistaken for one taken); and claims runs whose owner lapsed: the run given,
# or every running run, but only when some worker has lapsed (cheap when none has: no scan; a
# lapsed worker is forgotten once its runs are all claimed). Returns {taken, claimed}, claimed
# as pairs (run id, the worker it was claimed from; '' for a claim of this worker's own).
BEAT: Final = (
    _NOW
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local mine, count = '!' .. ARGV[1], tonumber(ARGV[5])
local taken, claimed, runs = {}, {}, {}
if redis.call('ZREM', KEYS[5], ARGV[1]) == 1 then
  for i = 6, 5 + count do
    local owner = redis.call('HGET', KEYS[2], ARGV[i])
    if owner then
      if owner ~= ARGV[1] then table.insert(taken, ARGV[i]) end
    elseif redis.call('ZSCORE', KEYS[4], ARGV[i]) then  -- ended and retired by another
      table.insert(taken, ARGV[i])
    end
  end
end
for i = 6 + count, #ARGV do table.insert(runs, ARGV[i]) end
local lapsed = {}
if ARGV[3] ~= '' then
  table.insert(runs, ARGV[3])
else
  lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
  if #lapsed > 0 then
    for _, run in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do table.insert(runs, run) end
  end
end
for _, run in ipairs(runs) do
  local owner = redis.call('HGET', KEYS[2], run)
  if owner == mine then
    table.insert(claimed, run)
    table.insert(claimed, '')
  elseif owner and owner ~= ARGV[1] then
    local worker = owner
    if string.sub(owner, 1, 1) == '!' then worker = string.sub(owner, 2) end
    local lease = redis.call('ZSCORE', KEYS[1], worker)
    if not lease or tonumber(lease) < now then
      redis.call('HSET', KEYS[2], run, mine)
      redis.call('ZADD', KEYS[5], now, worker)  -- its next renewal looks at its runs
      table.insert(claimed, run)
      table.insert(claimed, worker)
    end
  end
end
for _, worker in ipairs(lapsed) do redis.call('ZREM', KEYS[1], worker) end
if #lapsed > 0 then  -- a worker back after its runs' keys expired has nothing to learn
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. (now - tonumber(ARGV[4])))
end
return {taken, claimed}
"""
)


def worker_id() -> str:
    """Who a process is, in a log line an operator can act on: host, pid and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Owners:
    """This process's lease, the claims it makes, and the ends it writes for lost runs."""

    def __init__(
        self,
        io: IOLoop,
        registry: RunRegistry,
        *,
        prefix: str,
        lease_s: float,
        publish_args: tuple[str, str, str],
        running: Callable[[], list[str]],
        abandon: Callable[[list[str]], None],
        redact_errors: bool,
    ) -> None:
        self.io, self.registry, self.prefix = io, registry, prefix
        self.lease_s = lease_s
        self.interval_s = lease_s / 3
        self._span_ms = str(max(1, int((lease_s + self.interval_s) * 1000)))
        self._publish_args = publish_args  # maxlen, TTL while running, TTL once finished
        self._running = running  # the runs this process started and has not ended
        self._abandon = abandon  # stop publishing into runs another worker ended
        self._redact = redact_errors
        self.id = worker_id()
        self.renewed = time.monotonic()
        self._ending: set[str] = set()  # ends being written here: a beat may overlap another
        self._pending: set[str] = set()  # runs claimed here whose end is not stored yet
        # workers, owners, active, finished, and workers whose runs were claimed, when
        self.keys = [*registry.keys[6:8], *registry.keys[0:2], f"{prefix}:{{runs}}:robbed"]
        self._remembered_ms = str(int(float(publish_args[1]) * 1000))  # the runs' keys' TTL
        registry.owner = self.lease_args
        io.tasks.append(self._beat_forever)
        io.on_fork.append(self._forked)

    def _forked(self) -> None:
        self.id = worker_id()  # a child is a worker of its own, with runs of its own
        self._ending, self._pending = set(), set()

    def lease_args(self) -> tuple[str, str]:
        """What `ADMIT` renews: this worker and its lease span."""
        return self.id, self._span_ms

    # -- on the I/O loop ----------------------------------------------------------------------

    async def _beat_forever(self, io: IOLoop) -> None:
        while True:
            try:
                await self.beat(io.writer)
            except UNREACHABLE:
                pass  # Redis is down: the loop says so; leases lapse for everyone alike
            except Exception:
                report("RedisHub: renewing the worker lease")
            await asyncio.sleep(self.interval_s)

    async def fresh(self, client: Any) -> None:
        """Before writing: renew first if the last renewal is older than a renewal interval
        and a bit (the process was paused), so a run ended meanwhile is found out first."""
        if time.monotonic() - self.renewed > self.interval_s * 1.5:
            await self.beat(client)

    async def beat(self, client: Any, only: str = "") -> bool:
        """Renew the lease, find runs taken from this process, claim and end lost runs (`only`:
        just that one); True when `only` was claimed and ended here."""
        started = time.monotonic()
        mine = self._running()
        args = (self.id, self._span_ms, only, self._remembered_ms, len(mine), *mine)
        reply: Any = await client.eval(BEAT, 5, *self.keys, *args, *self._pending)
        gap, self.renewed = started - self.renewed, started
        still = set(self._running())  # not one this process retired while the beat was out
        taken = [str(run_id) for run_id in reply[0] if str(run_id) in still]
        if taken:
            self._abandon(taken)
            logger.warning(
                "otelstream: this process had not renewed its worker lease for %.1f s (paused, "
                "or cut off from Redis?) and another worker ended its run(s) %s as %s "
                "(OTELSTREAM_WORKER_LEASE_SECONDS=%s); it publishes nothing more into them",
                gap,
                ", ".join(taken),
                WORKER_LOST,
                self.lease_s,
            )
        claimed = reply[1]
        ended = False
        for i in range(0, len(claimed), 2):
            run_id, lost = str(claimed[i]), str(claimed[i + 1])
            if run_id in self._ending:
                continue
            self._ending.add(run_id)
            self._pending.add(run_id)  # until its end is stored: tried again at each beat
            try:
                await self.end(client, run_id, lost)
            finally:
                self._ending.discard(run_id)
            self._pending.discard(run_id)
            ended = ended or run_id == only
        return ended

    async def end(self, client: Any, run_id: str, lost: str) -> None:
        """Write the end of a run whose worker is gone, then retire it (its slot is freed)."""
        maxlen = self._publish_args[0]
        meta, tree = await read_tree(client, self.prefix, run_id, int(maxlen))
        start = decode({"e": meta["start"], "t": meta["start_t"]}) if "start" in meta else None
        end = self._lost_end(run_id, start, lost)
        result = 0
        keys = (stream_key(self.prefix, run_id), meta_key(self.prefix, run_id))
        if start is not None:  # the tasks it left open end first, then the run (one call)
            events = [*tree.unfinished_ends(end), end]
            encoded = [part for event in events for part in encode(event)]
            result = (await client.eval(PUBLISH, 2, *keys, *self._publish_args, "1", *encoded))[-1]
        if result == 0 and "done" in meta:  # its worker stored the end, then died: keep it
            stored = unrevealed_end(meta)
            if stored is None:
                entries = await client.xrange(keys[0], f"{meta['done']}-0", f"{meta['done']}-0")
                stored = decode(entries[0][1]) if entries else None
            end = stored or end
        if result > 0 or start is None:
            warn_limited(
                "otelstream: run %s ended as %s: its worker %s stopped renewing its lease "
                "(killed, out of memory, or its host lost)",
                run_id,
                WORKER_LOST,
                lost or "(a worker that was ending it)",
            )
        await self.registry.retire(client, [(run_id, end)])
        await reveal(client, self.prefix, maxlen, [run_id])  # after: see _codec

    def _lost_end(self, run_id: str, start: Event | None, lost: str) -> Event:
        now = time.time_ns()
        who = f"worker {lost}" if lost else "the worker that was ending it"
        message = (
            f"{who} stopped renewing its lease for over {self.lease_s:g} s "
            "(OTELSTREAM_WORKER_LEASE_SECONDS): it was killed, ran out of memory or lost its "
            f"host, so worker {self.id} ended the run"
        )
        return Event(
            PIPELINE_COMPLETED,
            "" if start is None else start.name,
            run_id,
            0 if start is None else start.span_id,
            None,
            now,
            duration_ns=None if start is None else max(0, now - start.time_ns),
            status="error",
            error=WORKER_LOST if self._redact else message,
            error_type=WORKER_LOST,
        )


__all__ = ["BEAT", "WORKER_LOST", "Owners", "worker_id"]
