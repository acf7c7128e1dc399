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
  own id there: that is the claim, made in one script, so exactly one worker makes it. The
  claimed run stays in `{runs}:claimed` until it retires, and every renewal names it again to
  its claimer (and passes it on if the claimer dies too): a claim whose reply was lost, as when
  Redis is paused past the client's timeout and runs the script anyway, is still ended.

The run's end itself goes through the run's PUBLISH script (its own slot), which refuses any
event after a `pipeline_completed`, and RETIRE does nothing for a run already retired: so one
terminal event, whoever writes it and however often. A worker that comes back after its lease
lapsed finds its runs owned by another (`BEAT` says which; after a renewal whose reply it lost
it looks at each of its runs), says so in its log and publishes nothing more into them. Its
`GET` and `DELETE` answer from Redis, as every worker's do: the run has ended, `WorkerLost`.

A pause of Redis itself is no death: time in which Redis heard no renewal from anyone for
longer than a lease is not counted against any lease (see `_beat.py`), so live workers keep
their runs, which end as they would have. Only a worker silent while others were heard loses
its runs, a lease and a renewal interval after its last renewal.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

from otelstream._errors import logger, report, warn_limited
from otelstream.events import PIPELINE_COMPLETED, Event
from otelstream.hubs._run_tree import WORKER_LOST
from otelstream.hubs.redis._beat import BEAT
from otelstream.hubs.redis._codec import (
    PUBLISH,
    decode,
    encode,
    meta_key,
    stream_key,
    unrevealed_end,
)
from otelstream.hubs.redis._loop import UNREACHABLE, IOLoop, stopping
from otelstream.hubs.redis._registry import RunRegistry
from otelstream.hubs.redis._run_end import reveal
from otelstream.hubs.redis._tree import read_tree


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
        self._look = False  # the last renewal failed: look at each of this worker's runs
        # workers, owners, active, finished, then robbed, claimed and heard (see `_beat.py`)
        runs = [f"{prefix}:{{runs}}:{name}" for name in ("robbed", "claimed", "heard")]
        self.keys = [*registry.keys[6:8], *registry.keys[0:2], *runs]
        self._remembered_ms = str(int(float(publish_args[1]) * 1000))  # the runs' keys' TTL
        registry.owner = self.lease_args
        io.tasks.append(self._beat_forever)
        io.on_fork.append(self._forked)

    def _forked(self) -> None:
        self.id = worker_id()  # a child is a worker of its own, with runs of its own
        self._ending, self._look = set(), False

    def lease_args(self) -> tuple[str, str]:
        """What `ADMIT` renews: this worker and its lease span."""
        return self.id, self._span_ms

    # -- on the I/O loop ----------------------------------------------------------------------

    async def _beat_forever(self, io: IOLoop) -> None:
        while not stopping():
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
        look, self._look = self._look, True  # until a reply is read: it may be lost
        args = (self.id, self._span_ms, only, self._remembered_ms, "1" if look else "0")
        reply: Any = await client.eval(BEAT, len(self.keys), *self.keys, *args, len(mine), *mine)
        gap, self.renewed, self._look = started - self.renewed, started, False
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
            self._ending.add(run_id)  # named again at each beat until its end is retired
            try:
                await self.end(client, run_id, lost)
            finally:
                self._ending.discard(run_id)
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
