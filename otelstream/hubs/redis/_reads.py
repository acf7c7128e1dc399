"""A run read back from Redis for a reader of it: where a subscription starts (the run's feed,
the runs stream's head, or a feed that ends at once), the run's position and its tree, each
after what this process published of the run before the read is written.

A run started here exists before its first events reach Redis (`Writer.started_here`), so
these reads wait for the writer's flush before they look; a run this process never saw is
known from its hash in Redis alone. `_hub.py` serves them as the `Hub` contract's reads.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Final

from otelstream.events._notices import EVENTS_LOST
from otelstream.hubs._contract import HubUnavailable, RunPosition, UnknownRun
from otelstream.hubs._feed import Feed
from otelstream.hubs.redis._codec import meta_key
from otelstream.hubs.redis._loop import IOLoop
from otelstream.hubs.redis._reader import RUNS, Reader
from otelstream.hubs.redis._registry import RunRegistry
from otelstream.hubs.redis._tree import read_tree
from otelstream.hubs.redis._writer import Writer
from otelstream.settings import Settings

FLUSH_S: Final = 2.0
"""How long a read waits for events this process published before it to be written."""


class RunReads:
    """The hub's reads of one run; `open` on the reader's loop, the others on the I/O loop."""

    def __init__(
        self,
        io: IOLoop,
        writer: Writer,
        reader: Reader,
        registry: RunRegistry,
        key_prefix: str,
        settings: Settings,
    ) -> None:
        self._io, self._writer, self._reader, self._registry = io, writer, reader, registry
        self.key_prefix = key_prefix
        self.settings = settings

    async def open(self, run_id: str, after: int) -> tuple[Feed, int]:
        """The feed a subscription reads (the run's, or one that ends at once) and where the
        subscription starts: `after`, or the stream's head if `after` is beyond it. A client's
        `Last-Event-ID` positions only that client: the feed this process shares among the
        run's readers never starts past what Redis holds, or a lying or buggy client would
        blind every other reader of the run here."""
        if run_id == RUNS:  # its feed starts at the stream's head, and a reader before it
            try:  # is given what is older at once, as a late reader of a run is
                head = await self._io.call(self._lifecycle_head())
                feed = self._reader.feed(RUNS, head)
                after = min(after, head)
                await self._io.call(self._reader.backfill(RUNS, feed, after))
            except HubUnavailable:
                return _ended(run_id, after, "Redis cannot be reached"), after
            return feed, after
        # Known before the lookup: once its end is stored, the writer forgets the run, and
        # that can happen while the lookup is on its way.
        known = self._writer.started_here(run_id)
        try:
            if known:  # what this process published before the reader came is there for it
                await self._io.call(self._writer.flush(FLUSH_S))
            last_seq, done = await self._io.call(self._lookup(run_id))
        except HubUnavailable:
            return _ended(run_id, after, "Redis cannot be reached"), after
        if last_seq is None and not known:
            raise UnknownRun(run_id)
        after = min(after, last_seq or 0)
        if done is not None and after >= done:
            return _ended(run_id, after), after  # the run is over and the reader has every event
        feed = self._reader.feed(run_id, after)
        with contextlib.suppress(HubUnavailable):  # the feed fails too, and says so
            await self._io.call(self._reader.backfill(run_id, feed, after))
        return feed, after

    async def _lookup(self, run_id: str) -> tuple[int | None, int | None]:
        """(the run's last seq in Redis, the seq of its end), None for what is not there."""
        seq, done = await self._io.query.hmget(meta_key(self.key_prefix, run_id), "seq", "done")
        return None if seq is None else int(seq), None if done is None else int(done)

    async def _lifecycle_head(self) -> int:
        """The seq of the runs stream's newest event (its counter); before the first, the
        counter is made here, at its epoch (see `_registry`), so the feed's seqs run on."""
        async with self._io.query.pipeline(transaction=False) as pipe:
            pipe.set(self._registry.counter, time.time_ns() // 1000, nx=True)
            pipe.get(self._registry.counter)
            _, counter = await pipe.execute()
        return int(counter)

    async def position(self, run_id: str) -> RunPosition | None:
        await self._writer.flush(FLUSH_S)
        known = self._writer.started_here(run_id)  # before the lookup, as in `open`
        key = meta_key(self.key_prefix, run_id)
        seq, done, status = await self._io.query.hmget(key, "seq", "done", "status")
        if seq is None:
            return RunPosition(0, False, "running") if known else None
        if done is None:
            return RunPosition(int(seq), False, "running")
        return RunPosition(int(seq), True, status or "success")

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        await self._writer.flush(FLUSH_S)
        meta, tree = await read_tree(
            self._io.query, self.key_prefix, run_id, self.settings.replay_events
        )
        if "seq" not in meta:
            return None
        run = tree.snapshot(run_id, int(meta["seq"])).to_dict()
        if int(meta.get("lost", 0)):
            run["events_lost"] = int(meta["lost"])
        return run


def _ended(run_id: str, after: int, failure: str | None = None) -> Feed:
    """A feed that ends its reader at once: plainly, or with `events_lost`."""
    feed = Feed(run_id, 1, base=after)
    if failure is None:
        feed.finish()
    else:
        feed.fail(EVENTS_LOST, failure)
    return feed


__all__ = ["FLUSH_S", "RunReads"]
