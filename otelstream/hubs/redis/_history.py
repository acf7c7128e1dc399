"""Pipelines' histories in Redis, shared by every worker: what one learnt, all use (issue 31).

Two lists a pipeline, under one hash tag so that they live on one Cluster node: its last
runs' outcomes, and its last successful ones (with their tasks' durations), each pushed
and trimmed to `history_runs` in one round trip with the TTL renewed, so a pipeline that
no longer runs is forgotten after `history_ttl_seconds`, well after its runs' retention.
The tag is a digest of the name: a name may hold any character, braces too. Folding a run
into an outcome is `hubs/_history.py`'s, as for the memory hub; here it runs on the
writer's loop after the run's end is stored, one round trip for the runs of a batch.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from otelstream.hubs._contract import Outcome
from otelstream.hubs._history import decode, encode, outcome_of, view
from otelstream.hubs.redis._loop import UNREACHABLE
from otelstream.hubs.redis._tree import read_tree


def history_keys(prefix: str, pipeline: str) -> tuple[str, str]:
    """(outcomes, successes) of the pipeline."""
    tag = hashlib.sha1(pipeline.encode(), usedforsecurity=False).hexdigest()[:16]
    return f"{prefix}:{{h{tag}}}:runs", f"{prefix}:{{h{tag}}}:successes"


class RedisHistory:
    def __init__(self, prefix: str, runs: int, ttl_s: float, max_spans: int) -> None:
        self.prefix, self.runs, self.max_spans = prefix, runs, max_spans
        self.ttl_ms = max(1, int(ttl_s * 1000))

    async def learn(self, client: Any, run_ids: list[str]) -> None:
        """The runs just ended (on the writer's loop): read their trees, record them."""
        with contextlib.suppress(*UNREACHABLE):  # Redis is away: those runs are not learnt
            learnt: list[tuple[str, Outcome]] = []
            for run_id in run_ids:
                meta, tree = await read_tree(client, self.prefix, run_id, self.max_spans)
                if "seq" in meta:
                    found = outcome_of(tree.snapshot(run_id, int(meta["seq"])).to_dict())
                    if found is not None:
                        learnt.append(found)
            if learnt:
                await self.record(client, learnt)

    async def record(self, client: Any, learnt: list[tuple[str, Outcome]]) -> None:
        async with client.pipeline(transaction=False) as pipe:
            for pipeline, outcome in learnt:
                raw = encode(outcome)
                keys = history_keys(self.prefix, pipeline)
                for key in keys if outcome["status"] == "success" else keys[:1]:
                    pipe.lpush(key, raw)
                    pipe.ltrim(key, 0, self.runs - 1)
                    pipe.pexpire(key, self.ttl_ms)
            await pipe.execute()

    async def read(self, client: Any, pipeline: str) -> dict[str, Any]:
        outcomes_key, successes_key = history_keys(self.prefix, pipeline)
        async with client.pipeline(transaction=False) as pipe:
            pipe.lrange(outcomes_key, 0, self.runs - 1)
            pipe.lrange(successes_key, 0, self.runs - 1)
            outcomes, successes = await pipe.execute()
        return view(pipeline, [decode(r) for r in outcomes], [decode(r) for r in successes])
