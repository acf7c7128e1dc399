"""RedisHub on a real three-master Redis Cluster (`redis+cluster://`), started by the test.

A run's keys share a hash tag, so each run lives on one node while runs spread over all
three; the reader sends one XREAD per run (a command cannot span slots), grouped per node
by redis-py's cluster pipeline.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from otelstream import Settings
from otelstream.events import Event
from otelstream.hubs import from_url
from otelstream.testing import RedisClusterServers, iter_sse, next_batch, read_events
from tests.conftest import EXAMPLE_SHAPE, shape, workers_on

if TYPE_CHECKING:
    from otelstream.hubs.redis import RedisHub

APP = "tests.apps.redis_example:app"


@pytest.fixture
def cluster(empty_redis_cluster: RedisClusterServers) -> RedisClusterServers:
    return empty_redis_cluster


@pytest.fixture
def hubs(cluster: RedisClusterServers) -> Iterator[tuple[RedisHub, RedisHub]]:
    made = [from_url(cluster.url, Settings()) for _ in range(2)]
    yield made[0], made[1]  # type: ignore[misc]
    for hub in made:
        hub.close()


def publish_run(hub: RedisHub, run_id: str, tasks: int, started: bool = False) -> None:
    now = time.time_ns
    if not started:
        hub.publish(run_id, Event("pipeline_started", "job", run_id, 1, None, now()))
    for span_id in range(2, tasks + 2):
        hub.publish(run_id, Event("task_started", f"t{span_id}", run_id, span_id, 1, now()))
    end = Event("pipeline_completed", "job", run_id, 1, None, now(), status="success")
    hub.publish(run_id, end)


async def seqs(hub: RedisHub, run_id: str) -> list[int]:
    found: list[int] = []
    async with hub.subscribe(run_id) as subscription:
        while (batch := await next_batch(subscription, timeout=5)) is not None:
            assert batch, "timed out"
            found.extend(event.seq for event in batch)
    return found


def test_runs_on_every_node_stream_whole_to_another_process(
    cluster: RedisClusterServers, hubs: tuple[RedisHub, RedisHub]
) -> None:
    writer, reader = hubs
    runs = [f"{n:032x}" for n in range(1, 31)]
    nodes = {int(str(cluster.nodes[0].command("CLUSTER", "KEYSLOT", f"{{{r}}}"))) for r in runs}
    assert len(nodes) == len(runs), "each run has a slot of its own"

    async def scenario() -> None:
        first = runs[0]
        writer.publish(first, Event("pipeline_started", "job", first, 1, None, time.time_ns()))
        await writer.flush()
        live = asyncio.create_task(seqs(reader, first))  # a reader waiting as the run goes
        await asyncio.sleep(0.1)
        for run_id in runs:
            publish_run(writer, run_id, tasks=20, started=run_id == first)
        await writer.flush()
        # the start, 20 tasks, the ends the run's end gives the 20 left open, the end
        assert await live == list(range(1, 43))
        for run_id in runs:  # late readers, one process away
            assert await seqs(reader, run_id) == list(range(1, 43))
        position = await reader.position(runs[5])
        assert position is not None and (position.last_seq, position.status) == (42, "success")
        run = await reader.get_run(runs[5])
        assert run is not None and len(run["tree"]["children"]) == 20
        page = await reader.list_runs(limit=10)
        assert [r["run_id"] for r in page.runs] == runs[::-1][:10] and page.next_cursor

    asyncio.run(scenario())
    per_node = [node.command("DBSIZE") for node in cluster.nodes]
    assert all(isinstance(n, int) and n > 0 for n in per_node), per_node
    assert writer.lost_events == 0


def test_a_cancel_on_one_process_reaches_the_process_running_the_run(
    hubs: tuple[RedisHub, RedisHub],
) -> None:
    running, other = hubs
    heard = threading.Event()
    run_id = "c" * 32
    running.on_cancel(lambda asked: asked == run_id and not heard.set())
    running.publish(run_id, Event("pipeline_started", "job", run_id, 1, None, time.time_ns()))

    async def scenario() -> bool:
        await running.flush()
        await asyncio.sleep(0.3)  # the pub/sub subscription is made
        return await other.cancel(run_id)

    assert asyncio.run(scenario())
    assert heard.wait(5)


@pytest.fixture
def two_workers(cluster: RedisClusterServers) -> Iterator[list[httpx.Client]]:
    with workers_on(cluster.url) as clients:
        yield clients


def test_two_workers_on_a_cluster_stream_resume_and_cancel_each_others_runs(
    two_workers: list[httpx.Client],
) -> None:
    a, b = two_workers
    for start_on, watch_on in ((a, b), (b, a), (a, b)):
        events = read_events(start_on, "POST", "/run-workflow", json=QUICK)
        assert shape(events) == EXAMPLE_SHAPE
        url = f"/runs/{events[0]['run_id']}/events"
        assert read_events(watch_on, "GET", url) == events
        assert read_events(watch_on, "GET", url, headers={"Last-Event-ID": "3"}) == events[3:]
    body = {"pipeline_name": "example", "parameters": {"seconds": 2}}
    run_id = a.post("/runs", json=body).json()["run_id"]
    seen: list[dict[str, Any]] = []
    for message in iter_sse(b, "GET", f"/runs/{run_id}/events"):
        seen.append(json.loads(message.data))
        if len(seen) == 2:
            assert b.delete(f"/runs/{run_id}").status_code == 202
    assert seen[-1]["type"] == "pipeline_completed" and seen[-1]["status"] == "cancelled"
    listed = b.get("/runs").json()
    assert listed["runs"][0]["run_id"] == run_id


QUICK = {"pipeline_name": "example", "parameters": {"seconds": 0}}
