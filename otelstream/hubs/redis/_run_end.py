"""A run's end as the Redis hub's writer records it, once PUBLISH stored its
`pipeline_completed`: into the runs list (RETIRE), then into the run's stream (REVEAL), then
into its pipeline's history and the metrics; before it, the ends of the tasks it leaves open.

The order is every hub's rule, state before notice (see `_codec.py`): a reader that has a
run's end never reads the run as running. A step that Redis did not answer is tried again
after the writer's next batch (or soon, `Writer.run`); one that Redis refused is reported and
given up, and a history missed costs no event. The lease's end of a lost worker's run
(`_owners.py`) reveals it the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from otelstream import _metrics
from otelstream._errors import report
from otelstream.events import PIPELINE_COMPLETED, Event
from otelstream.hubs.redis._buffer import Item
from otelstream.hubs.redis._codec import REVEAL, meta_key, stream_key
from otelstream.hubs.redis._loop import UNREACHABLE
from otelstream.hubs.redis._registry import RunRegistry
from otelstream.hubs.redis._tree import read_tree


class RunEnds:
    """The writer's: the ends of runs it stored and has yet to tell, on the I/O loop."""

    def __init__(self, registry: RunRegistry, prefix: str, maxlen: int) -> None:
        self.registry, self.prefix = registry, prefix
        self._maxlen = str(maxlen)
        self.unretired: dict[str, Event] = {}  # ends stored, not yet in the runs list
        self.unrevealed: dict[str, None] = {}  # ends in the runs list, not yet in the stream
        self.after_ends: Callable[[Any, list[str]], Awaitable[None]] | None = None  # history

    async def stored(self, client: Any, sent: list[Item], results: list[Any]) -> None:
        """After a batch: the ends that PUBLISH stored, told (`finish`), then their history."""
        ended = [
            (run_id, event)
            for (run_id, event), result in zip(sent, results, strict=True)
            if event.type == PIPELINE_COMPLETED and isinstance(result, int) and result > 0
        ]
        for run_id, event in ended:
            self.unretired[run_id] = event
        if self.unretired or self.unrevealed:
            with contextlib.suppress(*UNREACHABLE):  # tried again after the next batch
                await self.finish(client)
        if ended and self.after_ends is not None:  # the runs' histories (`hubs/_history.py`)
            try:
                await self.after_ends(client, [run_id for run_id, _ in ended])
            except Exception:  # a history missed is no event lost
                report("RedisHub: recording the history of runs")

    async def finish(self, client: Any) -> None:
        """The runs whose end PUBLISH stored: into the runs list (RETIRE), then into their
        streams (REVEAL), in this order (see `_codec.py`: state before notice)."""
        try:
            if self.unretired:
                ends = list(self.unretired.items())
                await self.registry.retire(client, ends)
                for run_id, _ in ends:
                    del self.unretired[run_id]
                    self.unrevealed[run_id] = None
            if self.unrevealed:
                runs = list(self.unrevealed)
                await reveal(client, self.prefix, self._maxlen, runs)
                for run_id in runs:
                    del self.unrevealed[run_id]
        except UNREACHABLE:
            raise  # tried again once Redis answers
        except Exception:  # Redis refused it: trying again would not help
            report("RedisHub: recording the end of runs")
            self.unretired.clear()
            self.unrevealed.clear()

    async def end_open_tasks(
        self, client: Any, batch: list[Item], taken: dict[str, None]
    ) -> list[Item]:
        """Before a run's `pipeline_completed`, the ends of the tasks it leaves open (those of
        this process and of any other, read from the run's tree: `RunTree.unfinished_ends`).
        One round trip a run's end; a task of another process that ends meanwhile is still
        ended in the stream, before the run, and its tree keeps its own end."""
        ends = [i for i, (_, event) in enumerate(batch) if event.type == PIPELINE_COMPLETED]
        if not ends:
            return batch
        out: list[Item] = []
        done = 0
        for index in ends:
            run_id, end = batch[index]
            if run_id in taken:
                continue
            try:
                _, tree = await read_tree(client, self.prefix, run_id, int(self._maxlen))
            except UNREACHABLE:
                raise
            except Exception:  # its keys are not a run's (WRONGTYPE): its events say so
                continue
            for item in batch[:index]:  # not in Redis yet: before the end in this batch
                if item[0] == run_id:
                    tree.apply(item[1])
            out.extend(batch[done:index])
            out.extend((run_id, unfinished) for unfinished in tree.unfinished_ends(end))
            done = index
        out.extend(batch[done:])
        return out


def count_end(event: Event, counted: bool) -> None:
    """The run's end in the metrics (`otelstream._metrics`), with its duration."""
    took = event.duration_ns  # `otelstream._metrics`: the run's duration
    seconds = None if took is None else took / 1e9
    _metrics.run_ended(event.name, event.status or "success", seconds, counted)


async def reveal(client: Any, prefix: str, maxlen: str, run_ids: list[str]) -> None:
    """Put the stored ends of these runs into their streams (REVEAL, one slot each)."""
    async with client.pipeline(transaction=False) as pipe:
        for run_id in run_ids:
            pipe.eval(REVEAL, 2, stream_key(prefix, run_id), meta_key(prefix, run_id), maxlen)
        await pipe.execute()


__all__ = ["RunEnds", "count_end", "reveal"]
