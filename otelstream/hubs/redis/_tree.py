"""A run's span tree read back from Redis: for `get_run`, and for the ends of the tasks a run
leaves open, which go into its stream before its `pipeline_completed` (`RunTree`'s rule).

The tree is folded from the run's stream (and its start, kept in its hash for a stream that
was trimmed), the same fold as the memory hub's; an end that PUBLISH stored and REVEAL has not
yet moved into the stream is read from the hash (see `_codec.py`).
"""

from __future__ import annotations

from typing import Any

from otelstream.events import Event
from otelstream.hubs._run_tree import RunTree
from otelstream.hubs.redis._codec import (
    decode,
    marker_seq,
    meta_key,
    stream_key,
    unrevealed_end,
)


async def read_tree(
    client: Any, prefix: str, run_id: str, max_spans: int
) -> tuple[dict[str, str], RunTree]:
    """(the run's hash, its tree) in one round trip; an empty hash for an unknown run."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(meta_key(prefix, run_id))
        pipe.xrange(stream_key(prefix, run_id))
        meta, entries = await pipe.execute()
    meta = meta or {}
    tree = RunTree(max_spans=max_spans)
    events: list[Event] = [
        decode(fields) for entry_id, fields in entries if marker_seq(entry_id) is None
    ]
    if "start" in meta and (not events or events[0].seq != 1):  # trimmed from the stream
        tree.apply(decode({"e": meta["start"], "t": meta["start_t"]}))
    end = unrevealed_end(meta)  # stored, on its way to the stream: the run has ended
    for event in events if end is None else [*events, end]:
        tree.apply(event)
    return meta, tree
