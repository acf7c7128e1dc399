"""Loss markers: how the streams of a run in other processes learn that this process lost
some of the run's events (the buffer was full, Redis was down, an event did not encode).

A marker is an entry of the run's stream after its last seq, written by the MARK_LOST script
(`_codec.py`), which also counts the loss in the run's hash; every reader of the run, in any
process, is then told `events_lost`. The writer queues markers from any thread and writes
them on the I/O loop after a batch; those Redis did not take wait for the next.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from typing import Any

from otelstream.hubs.redis._codec import MARK_LOST, meta_key, stream_key
from otelstream.hubs.redis._loop import UNREACHABLE


class LossMarkers:
    """The writer's: lost events awaiting a marker, by run; `mark` from any thread."""

    def __init__(self, prefix: str, maxlen: int, keep: int) -> None:
        self.prefix, self._maxlen, self._keep = prefix, str(maxlen), keep
        self.unmarked: OrderedDict[str, int] = OrderedDict()  # lost events awaiting a marker
        self._lock = threading.Lock()

    def mark(self, run_id: str, count: int) -> None:
        """Queue a loss marker, so that other processes' streams of the run are told."""
        with self._lock:
            self.unmarked[run_id] = self.unmarked.get(run_id, 0) + count
            while len(self.unmarked) > self._keep:
                self.unmarked.popitem(last=False)

    async def write(self, client: Any) -> None:
        """Write the markers queued, one pipelined round trip; queued again if Redis failed."""
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


__all__ = ["LossMarkers"]
