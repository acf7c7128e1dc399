"""RedisHub on a real redis-server: several processes, Redis failures, caps and expiry, workers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from otelstream import EventStreamProcessor, Settings
from otelstream.events import Event
from otelstream.fastapi import create_router
from otelstream.testing import UvicornServer, iter_sse, next_batch, read_events
from tests.conftest import EXAMPLE_SHAPE, ROOT, Gate, shape, workers_on
from tests.redis_server import RedisServer, redis_server
from tests.routers import TWO_STEPS

if TYPE_CHECKING:
    from otelstream.hubs.redis import RedisHub  # imported once redis_server() found redis-py

TIMEOUT = httpx.Timeout(10.0)


@pytest.fixture
def server(empty_redis: RedisServer) -> RedisServer:
    return empty_redis


@pytest.fixture
def make_hub(server: RedisServer) -> Iterator[Callable[..., RedisHub]]:
    from otelstream.hubs.redis import RedisHub

    hubs: list[RedisHub] = []

    def make(**settings: Any) -> RedisHub:
        options = {
            k: settings.pop(k) for k in ("buffer_events", "running_ttl_seconds") if k in settings
        }
        hub = RedisHub(server.url, Settings(**settings), **options)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close(timeout=2)


def event(kind: str, run_id: str, span_id: int, **fields: Any) -> Event:
    parent = None if kind.startswith("pipeline") else 1
    return Event(kind, f"s{span_id}", run_id, span_id, parent, time.time_ns(), **fields)


async def drain(hub: RedisHub, run_id: str, after: int = 0) -> list[Event]:
    events: list[Event] = []
    async with hub.subscribe(run_id, after) as subscription:
        while (batch := await next_batch(subscription, timeout=5)) is not None:
            assert batch, "timed out"
            events.extend(batch)
    return events


def test_streams_are_capped_and_expire(
    server: RedisServer, make_hub: Callable[..., RedisHub]
) -> None:
    hub = make_hub(replay_events=5, run_retention_seconds=30, running_ttl_seconds=600)
    run_id = "a" * 32
    hub.publish(run_id, event("pipeline_started", run_id, 1))
    for span_id in range(2, 12):  # tasks' ends: none left open, so the run's end adds none
        hub.publish(run_id, event("task_completed", run_id, span_id, duration_ns=0))
    asyncio.run(hub.flush())
    stream, meta = f"otelstream:{{{run_id}}}:events", f"otelstream:{{{run_id}}}:meta"
    assert server.command("XLEN", stream) == 5
    ids = [entry[0] for entry in server.command("XRANGE", stream, "-", "+")]  # type: ignore[union-attr]
    assert ids == ["7-0", "8-0", "9-0", "10-0", "11-0"]
    for key in (stream, meta):
        assert 590_000 < server.command("PTTL", key) <= 600_000  # type: ignore[operator]
    hub.publish(run_id, event("pipeline_completed", run_id, 1, status="success"))
    asyncio.run(hub.flush())
    for key in (stream, meta):
        assert 20_000 < server.command("PTTL", key) <= 30_000  # type: ignore[operator]
    run = asyncio.run(hub.get_run(run_id))
    assert run is not None
    # the start was trimmed from the stream; the run keeps its name and root from the summary
    assert (run["name"], run["status"], run["last_seq"]) == ("s1", "success", 12)
    assert [e.seq for e in asyncio.run(drain(hub, run_id))] == [8, 9, 10, 11, 12]


def test_concurrent_runs_and_publisher_processes_get_1_to_n(
    server: RedisServer, make_hub: Callable[..., RedisHub]
) -> None:
    hub = make_hub(replay_events=100_000)
    runs = ["b" * 32, "c" * 32]
    for run_id in runs:
        hub.publish(run_id, event("pipeline_started", run_id, 1))
    asyncio.run(hub.flush())
    processes, count = 4, 400
    start_at = time.time() + 1.5
    publishers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.apps.redis_publisher",
                server.url,
                str(index),
                str(count),
                str(start_at),
                *runs,
            ],
            cwd=ROOT,
        )
        for index in range(processes)
    ]
    for publisher in publishers:
        assert publisher.wait(30) == 0
    for run_id in runs:
        hub.publish(run_id, event("pipeline_completed", run_id, 1, status="success"))
    for run_id in runs:
        events = asyncio.run(drain(hub, run_id))
        total = processes * count + 2
        assert [e.seq for e in events] == list(range(1, total + 1))
        tasks = events[1:-1]
        assert sorted(e.span_id for e in tasks) == sorted(
            (index + 1) * 1_000_000 + i for index in range(processes) for i in range(count)
        )
        for index in range(processes):  # each process's events keep its order
            mine = [e.span_id for e in tasks if e.name == f"p{index}"]
            assert mine == sorted(mine)
        assert len({e.name for e in tasks}) == processes, "the processes all published"


@pytest.mark.internal_errors
def test_lost_events_are_counted_and_every_subscriber_is_told(
    server: RedisServer, make_hub: Callable[..., RedisHub]
) -> None:
    publisher = make_hub(buffer_events=10)
    other = make_hub()  # another process reading the run
    run_id = "d" * 32
    publisher.publish(run_id, event("pipeline_started", run_id, 1))
    publisher.publish(run_id, event("task_started", run_id, 2))

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Event] | None]:
        async with publisher.subscribe(run_id) as here, other.subscribe(run_id) as there:
            seen_here = [e.to_dict() for e in await next_batch(here, timeout=5) or []]
            seen_there: list[dict[str, Any]] = []
            while len(seen_there) < 2:
                seen_there += [e.to_dict() for e in await next_batch(there, timeout=5) or []]
            assert server.process is not None
            os.kill(server.process.pid, signal.SIGSTOP)  # Redis hangs: the buffer fills up
            try:
                for span_id in range(3, 603):
                    publisher.publish(run_id, event("task_started", run_id, span_id))
                assert publisher.lost_events >= 600 - 500 - 10  # one batch in flight, ten kept
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            while (batch := await next_batch(here, timeout=5)) is not None:
                seen_here += [e.to_dict() for e in batch]
            while (batch := await next_batch(there, timeout=5)) is not None:
                assert batch, "the other process's stream hangs"
                seen_there += [e.to_dict() for e in batch]
            return seen_here, seen_there, await next_batch(there, timeout=0.01)

    here, there, after = asyncio.run(scenario())
    lost = publisher.lost_events
    for seen in (here, there):
        told = seen[-1]
        assert told["type"] == "events_lost" and told["run_id"] == run_id
        kept = [e["seq"] for e in seen[:-1]]
        assert kept == list(range(1, len(kept) + 1)) and told["last_seq"] == kept[-1]
    assert after is None
    asyncio.run(publisher.flush())
    run = asyncio.run(other.get_run(run_id))
    assert run is not None and run["events_lost"] == lost
    assert run["last_seq"] == 602 - lost


@pytest.mark.internal_errors
def test_redis_killed_mid_run_then_restarted(
    server: RedisServer, make_hub: Callable[..., RedisHub]
) -> None:
    hub = make_hub(keepalive_seconds=0.2)
    provider = TracerProvider()
    provider.add_span_processor(EventStreamProcessor(hub))
    tracer = provider.get_tracer("tests")
    gate, finished, failures = Gate(), threading.Event(), []

    def gated() -> None:
        try:
            with tracer.start_as_current_span("task:before"):
                pass
            gate()
            for n in range(20):  # Redis is down now
                with tracer.start_as_current_span(f"task:after_{n}"):
                    pass
        except BaseException as exc:  # nothing may reach the task code
            failures.append(exc)
            raise
        finished.set()

    def two_steps() -> None:
        with tracer.start_as_current_span("task:extract"):
            pass
        with tracer.start_as_current_span("task:load"):
            pass

    app = FastAPI()
    pipelines = {"gated": gated, "two_steps": two_steps}
    app.include_router(create_router(hub=hub, pipelines=pipelines, tracer_provider=provider))
    with (
        UvicornServer(app) as uvicorn,
        httpx.Client(base_url=uvicorn.url, timeout=TIMEOUT) as client,
    ):
        run_id = client.post("/runs", json={"pipeline_name": "gated"}).json()["run_id"]
        assert gate.reached.wait(10)
        messages = []
        for message in iter_sse(client, "GET", f"/runs/{run_id}/events"):
            messages.append(message)
            if len(messages) == 3:
                server.kill()
                gate.opened.set()
        assert finished.wait(10) and not failures, failures
        assert [m.id for m in messages[:3]] == ["1", "2", "3"]
        told = json.loads(messages[-1].data)
        assert told["type"] == "events_lost" and told["last_seq"] == 3, told
        assert messages[-1].id == "3", "sent without an id of its own"
        assert len(messages) == 4, "the stream ended after telling"

        server.start()  # empty: nothing of the first run survived
        events = read_events(client, "POST", "/run-workflow", json={"pipeline_name": "two_steps"})
        assert shape(events) == TWO_STEPS
        assert [e["seq"] for e in events] == list(range(1, 7))
    # what the first run published after the kill, 20 tasks and its end, never reached Redis
    assert hub.lost_events == 41
    provider.shutdown()


# -- several uvicorn processes on one Redis ----------------------------------------------------

APP = "tests.apps.redis_example:app"


@pytest.fixture(scope="module")
def two_workers() -> Iterator[list[httpx.Client]]:
    """Two workers shared by the module's tests (each run its own runs), on a redis-server of
    their own: the other tests empty theirs, and one kills it."""
    with contextmanager(redis_server)() as server, workers_on(server.url) as clients:
        yield clients


def test_start_on_one_worker_stream_and_resume_on_another(
    two_workers: list[httpx.Client],
) -> None:
    a, b = two_workers
    body = {"pipeline_name": "example", "parameters": {"seconds": 0.3}}
    run_id = a.post("/runs", json=body).json()["run_id"]
    url = f"/runs/{run_id}/events"
    first = []
    for message in iter_sse(b, "GET", url):
        first.append(json.loads(message.data))
        if len(first) == 2:
            break  # the connection drops here
    rest = read_events(b, "GET", url, headers={"Last-Event-ID": "2"})
    assert shape(first + rest) == EXAMPLE_SHAPE
    assert [e["seq"] for e in first + rest] == list(range(1, 7))
    assert {e["run_id"] for e in first + rest} == {run_id}
    whole = read_events(b, "GET", url)  # a late subscriber on B
    assert [e["seq"] for e in whole] == list(range(1, 7))
    for client in (a, b):
        run = client.get(f"/runs/{run_id}").json()
        assert (run["status"], run["last_seq"]) == ("success", 6)
        assert [c["name"] for c in run["tree"]["children"]] == ["compute", "finalize"]
    assert b.get(url, headers={"Last-Event-ID": "6"}).status_code == 204


def test_a_worker_process_streams_into_the_run(
    two_workers: list[httpx.Client],
) -> None:
    a, b = two_workers
    body = {"pipeline_name": "remote", "parameters": {"seconds": 0.05}}
    events = read_events(a, "POST", "/run-workflow", json=body)
    assert shape(events) == [
        ("pipeline_started", "remote"),
        ("task_started", "dispatch"),
        ("task_started", "crunch"),
        ("task_started", "crunch_part_1"),
        ("task_completed", "crunch_part_1"),
        ("task_started", "crunch_part_2"),
        ("task_completed", "crunch_part_2"),
        ("task_completed", "crunch"),
        ("task_completed", "dispatch"),
        ("task_started", "summarize"),
        ("task_completed", "summarize"),
        ("pipeline_completed", "remote"),
    ]
    assert [e["seq"] for e in events] == list(range(1, 13))
    span = {e["name"]: e["span_id"] for e in events if e["type"] == "task_started"}
    parent = {e["name"]: e["parent_span_id"] for e in events if e["type"] == "task_started"}
    assert parent["dispatch"] == parent["summarize"] == events[0]["span_id"]
    assert parent["crunch"] == span["dispatch"], "the worker's span hangs under the dispatch"
    assert parent["crunch_part_1"] == parent["crunch_part_2"] == span["crunch"]
    assert events[-1]["status"] == "success"
    run_id = events[0]["run_id"]
    assert read_events(b, "GET", f"/runs/{run_id}/events") == events


def test_a_hub_is_chosen_by_url(server: RedisServer) -> None:
    from otelstream import hubs

    from_url = getattr(hubs, "from_url", None)
    if from_url is None:
        pytest.skip("otelstream.hubs.from_url comes with the issue-4 diff of hubs/__init__.py")
    from otelstream.hubs.redis import RedisHub

    assert isinstance(from_url("memory"), hubs.memory.MemoryHub)
    hub = from_url(server.url, Settings(replay_events=7))
    try:
        assert isinstance(hub, RedisHub) and hub.settings.replay_events == 7
    finally:
        hub.close()
    with pytest.raises(ValueError, match="memory, redis://"):
        from_url("kafka://x")


def test_a_burst_of_readers_waits_for_connections_instead_of_failing(
    make_hub: Callable[..., RedisHub],
) -> None:
    writer, reader = make_hub(), make_hub()  # the reader knows the run only through Redis
    run_id = "b" * 32
    writer.publish(run_id, event("pipeline_started", run_id, 1))
    writer.publish(run_id, event("pipeline_completed", run_id, 1, status="success"))

    async def burst() -> list[Any]:
        await writer.flush()
        lookups = [reader.get_run(run_id) for _ in range(300)]
        streams = [drain(reader, run_id) for _ in range(300)]
        return await asyncio.gather(*lookups, *streams)

    results = asyncio.run(burst())
    runs, streams = results[:300], results[300:]
    assert {run["status"] for run in runs} == {"success"}
    assert {tuple(e.seq for e in events) for events in streams} == {(1, 2)}


def test_any_worker_cancels_a_run_another_worker_runs(
    two_workers: list[httpx.Client],
) -> None:
    a, b = two_workers
    body = {"pipeline_name": "example", "parameters": {"seconds": 2}}
    run_id = a.post("/runs", json=body).json()["run_id"]
    url = f"/runs/{run_id}/events"
    events = []
    for message in iter_sse(b, "GET", url):
        events.append(json.loads(message.data))
        if len(events) == 2:  # compute has started: the run sleeps in it
            response = b.delete(f"/runs/{run_id}")
            assert response.status_code == 202, response.text
    assert shape(events)[:2] == EXAMPLE_SHAPE[:2]
    assert events[-1]["type"] == "pipeline_completed"
    assert events[-1]["status"] == "cancelled", "it stopped at its next span"
    assert ("task_started", "finalize") not in shape(events)
    assert b.delete(f"/runs/{run_id}").status_code == 409  # ended
    assert a.get(f"/runs/{run_id}").json()["status"] == "cancelled"


def test_run_bounds_hold_across_every_process_sharing_the_redis(
    server: RedisServer, make_hub: Callable[..., RedisHub]
) -> None:
    one, two = (make_hub(max_active_runs=2, max_finished_runs=2) for _ in range(2))
    runs = [f"{n:032x}" for n in range(1, 6)]

    async def positions(hub: RedisHub) -> list[Any]:
        await one.flush()
        await two.flush()
        return [await hub.position(run_id) for run_id in runs]

    # two runs start on two processes; a third, on either, is over the bound
    one.publish(runs[0], event("pipeline_started", runs[0], 1))
    asyncio.run(one.flush())
    two.publish(runs[1], event("pipeline_started", runs[1], 1))
    asyncio.run(two.flush())
    one.publish(runs[2], event("pipeline_started", runs[2], 1))
    one.publish(runs[2], event("task_started", runs[2], 2))
    asyncio.run(one.flush())
    two.publish(runs[2], event("task_started", runs[2], 3))  # a worker's event of that run
    found = asyncio.run(positions(two))
    assert [p is not None for p in found] == [True, True, False, False, False]
    assert one.dropped_events == 2 and two.dropped_events == 1
    # runs end: room for new ones; past two finished runs the oldest are deleted
    for hub, run_id in ((one, runs[0]), (two, runs[1])):
        hub.publish(run_id, event("pipeline_completed", run_id, 1, status="success"))
        asyncio.run(hub.flush())
    for run_id in runs[3:]:
        two.publish(run_id, event("pipeline_started", run_id, 1))
        two.publish(run_id, event("pipeline_completed", run_id, 1, status="success"))
    found = asyncio.run(positions(one))
    assert [p is not None for p in found] == [False, False, False, True, True]
    assert server.command("EXISTS", f"otelstream:{{{runs[0]}}}:events") == 0
    assert server.command("ZCARD", "otelstream:{runs}:finished") == 2
    assert server.command("ZCARD", "otelstream:{runs}:active") == 0


def test_a_cancel_sent_while_a_process_was_not_listening_reaches_it(
    server: RedisServer, make_hub: Callable[..., RedisHub]
) -> None:
    running, other = make_hub(), make_hub()
    run_id = "f" * 32
    heard = threading.Event()
    running.on_cancel(lambda asked: asked == run_id and not heard.set())
    running.publish(run_id, event("pipeline_started", run_id, 1))

    async def scenario() -> None:
        await running.flush()
        await asyncio.sleep(0.3)  # subscribed
        # a cancel whose message went by while the process was not subscribed: in the hash only
        server.command("HSET", f"otelstream:{{{run_id}}}:meta", "cancel", 1)
        server.command("CLIENT", "KILL", "TYPE", "pubsub")  # it subscribes again in 0.25 s

    asyncio.run(scenario())
    assert heard.wait(5), "the process that runs it found the cancel once subscribed again"
    assert asyncio.run(other.cancel(run_id)), "and the run goes on until it stops"


def test_a_run_whose_process_died_gives_its_place_back_after_the_running_ttl(
    server: RedisServer, make_hub: Callable[..., RedisHub]
) -> None:
    hub = make_hub(max_active_runs=1, running_ttl_seconds=1)
    dead, alive = "1" * 32, "2" * 32
    hub.publish(dead, event("pipeline_started", dead, 1))  # and never ends
    asyncio.run(hub.flush())
    time.sleep(1.1)
    hub.publish(alive, event("pipeline_started", alive, 1))
    asyncio.run(hub.flush())
    assert asyncio.run(hub.position(alive)) is not None, "the dead run's place was given back"
    listed = asyncio.run(hub.list_runs())
    assert [run["run_id"] for run in listed.runs] == [alive]


def test_a_worker_that_died_between_storing_its_runs_end_and_telling_it_is_told_for(
    server: RedisServer, make_hub: Callable[..., RedisHub]
) -> None:
    """A run's end is stored (PUBLISH: its hash), then put in the runs list, then in its stream
    (see `_codec.py`: state before notice). Its worker killed right after the first step: the
    worker that ends its runs finds that end in the hash and tells it, the end the run had (not
    WorkerLost)."""
    import redis as redis_py

    from otelstream.hubs.redis._codec import PUBLISH, encode, meta_key, stream_key

    owner, survivor = make_hub(worker_lease_seconds=1), make_hub(worker_lease_seconds=1)
    run_id = "d" * 32
    owner.publish(run_id, event("pipeline_started", run_id, 1))
    owner.publish(run_id, event("task_started", run_id, 2))
    asyncio.run(owner.flush())
    end = event("pipeline_completed", run_id, 1, status="error", error="boom", error_type="E")
    keys = (stream_key("otelstream", run_id), meta_key("otelstream", run_id))
    with redis_py.Redis.from_url(server.url) as client:  # the owner's PUBLISH, alone
        args = (*owner._writer.publish_args, "1", *encode(end))
        assert client.eval(PUBLISH, 2, *keys, *args) == [3]
    owner._io.stop(asyncio.sleep(0), 2)  # killed: no RETIRE, no REVEAL, no more renewals
    owner._closed = True
    assert asyncio.run(survivor.position(run_id)) == (3, True, "error")  # the stored end
    events = asyncio.run(asyncio.wait_for(drain(survivor, run_id), 20))
    assert [(e.type, e.seq, e.error_type) for e in events] == [
        ("pipeline_started", 1, None),
        ("task_started", 2, None),
        ("pipeline_completed", 3, "E"),
    ]
    (listed,) = asyncio.run(survivor.list_runs()).runs
    assert (listed["status"], listed["error_type"]) == ("error", "E")
