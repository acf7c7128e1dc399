"""One suite for every hub: what MemoryHub does, RedisHub does too (on a real redis-server).

Where the two differ on purpose, the difference is in the hub's own test file:
MemoryHub refuses events before `pipeline_started` and bounds runs by count,
RedisHub accepts a worker's event that overtakes its run's start (it came from
another process) and bounds runs by Redis expiry.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otelstream import MemoryHub, Settings, UnknownRun
from otelstream.events import Event
from otelstream.hubs import Hub, SubscriberLagged

from .redis_server import RedisServer, redis_server

RUN = "0af7651916cd43dd8448eb211c80319c"
MakeHub = Callable[..., Hub]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    yield from redis_server()


@pytest.fixture(params=["memory", "redis"])
def make_hub(request: pytest.FixtureRequest) -> Iterator[MakeHub]:
    """Builds the hub under test with the given settings; Redis is emptied first."""
    if request.param == "memory":
        yield lambda **settings: MemoryHub(Settings(**settings))
        return
    from otelstream.hubs.redis import RedisHub

    server: RedisServer = request.getfixturevalue("redis")
    server.command("FLUSHALL")
    hubs: list[RedisHub] = []

    def make(**settings: Any) -> Hub:
        hub = RedisHub(server.url, Settings(**settings))
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close()


def start(hub: Hub, run_id: str = RUN) -> None:
    hub.publish(run_id, Event("pipeline_started", "p", run_id, 1, None, time.time_ns()))


def task(hub: Hub, span_id: int, run_id: str = RUN) -> None:
    hub.publish(run_id, Event("task_started", f"t{span_id}", run_id, span_id, 1, time.time_ns()))


def finish(hub: Hub, run_id: str = RUN, status: str = "success") -> None:
    event = Event("pipeline_completed", "p", run_id, 1, None, time.time_ns(), status=status)
    hub.publish(run_id, event)


async def read_all(hub: Hub, run_id: str = RUN, after: int = 0) -> list[int]:
    seqs: list[int] = []
    async with hub.subscribe(run_id, after) as subscription:
        while (batch := await subscription.next_batch(timeout=5)) is not None:
            assert batch, "timed out"
            seqs.extend(event.seq for event in batch)
    return seqs


def get_run(hub: Hub, run_id: str = RUN) -> dict[str, Any] | None:
    return asyncio.run(hub.get_run(run_id))


def test_a_run_started_here_is_subscribable_at_once(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)  # what the router does: start the run, then subscribe straight away

    async def scenario() -> list[int]:
        async with hub.subscribe(RUN) as subscription:
            first = await subscription.next_batch(timeout=5)
            return [event.seq for event in first or []]

    assert asyncio.run(scenario()) == [1]


def test_sequence_has_no_gaps_or_repeats_across_threads(make_hub: MakeHub) -> None:
    hub = make_hub(replay_events=50_000)
    start(hub)
    barrier = threading.Barrier(8)

    def publish(base: int) -> None:
        barrier.wait()
        for i in range(500):
            task(hub, base + i)

    threads = [threading.Thread(target=publish, args=((n + 1) * 10_000,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finish(hub)
    assert asyncio.run(read_all(hub)) == list(range(1, 4_003))
    run = get_run(hub)
    assert run is not None and run["last_seq"] == 4_002
    assert len(run["tree"]["children"]) == 4_000


def test_replay_after_k_resumes_right_after_it(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)
    task(hub, 2)
    task(hub, 3)
    finish(hub)
    assert asyncio.run(read_all(hub, after=2)) == [3, 4]
    assert asyncio.run(read_all(hub, after=4)) == []


def test_a_late_subscriber_gets_the_whole_run(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)
    for span_id in range(2, 7):
        task(hub, span_id)
    finish(hub)
    assert asyncio.run(read_all(hub)) == list(range(1, 8))
    assert asyncio.run(read_all(hub)) == list(range(1, 8)), "and again"


def test_replay_is_bounded_and_keeps_the_newest(make_hub: MakeHub) -> None:
    hub = make_hub(replay_events=5)
    start(hub)
    for span_id in range(2, 10):
        task(hub, span_id)
    finish(hub)
    assert asyncio.run(read_all(hub)) == [6, 7, 8, 9, 10]
    assert asyncio.run(read_all(hub, after=8)) == [9, 10]
    run = get_run(hub)
    assert run is not None
    assert (run["name"], run["status"], run["last_seq"]) == ("p", "success", 10)


def test_a_waiting_subscriber_is_woken_by_a_publisher_thread(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)

    async def scenario() -> list[int]:
        async with hub.subscribe(RUN) as subscription:
            assert [e.seq for e in await subscription.next_batch(timeout=5) or []] == [1]
            timer = threading.Timer(0.05, task, args=(hub, 2))
            timer.start()
            batch = await subscription.next_batch(timeout=30)  # woken, not timed out
            timer.join()
            return [e.seq for e in batch or []]

    assert asyncio.run(scenario()) == [2]


def test_an_idle_subscriber_gets_an_empty_batch_when_its_timeout_ends(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)

    async def scenario() -> list[Event] | None:
        async with hub.subscribe(RUN) as subscription:
            assert [e.seq for e in await subscription.next_batch(timeout=5) or []] == [1]
            return await subscription.next_batch(timeout=0.01)

    assert asyncio.run(scenario()) == []


def test_the_stream_ends_with_the_run_and_later_events_are_dropped(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)
    task(hub, 2)

    async def scenario() -> tuple[list[int], list[Event] | None]:
        seqs: list[int] = []
        async with hub.subscribe(RUN) as subscription:
            while len(seqs) < 2:
                batch = await subscription.next_batch(timeout=5)
                assert batch, "timed out"
                seqs.extend(e.seq for e in batch)
            finish(hub)
            task(hub, 3)  # after the end: dropped
            while (batch := await subscription.next_batch(timeout=5)) is not None:
                assert batch, "timed out"
                seqs.extend(e.seq for e in batch)
            return seqs, await subscription.next_batch(timeout=0.01)

    seqs, after_end = asyncio.run(scenario())
    assert seqs == [1, 2, 3]
    assert after_end is None
    run = get_run(hub)
    assert run is not None and run["last_seq"] == 3 and run["status"] == "success"
    assert hub.dropped_events == 1  # type: ignore[attr-defined]


def test_an_unknown_run_is_refused(make_hub: MakeHub) -> None:
    hub = make_hub()

    async def scenario() -> None:
        with pytest.raises(UnknownRun):
            async with hub.subscribe("f" * 32):
                pass

    asyncio.run(scenario())
    assert get_run(hub, "f" * 32) is None


def test_subscribers_on_two_event_loops_each_get_every_event(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)
    results: dict[str, list[int]] = {}
    ready = threading.Barrier(3)

    def reader(name: str) -> None:
        async def run() -> list[int]:
            seqs: list[int] = []
            async with hub.subscribe(RUN) as subscription:
                ready.wait()
                while (batch := await subscription.next_batch(timeout=5)) is not None:
                    assert batch, "timed out"
                    seqs.extend(event.seq for event in batch)
            return seqs

        results[name] = asyncio.run(run())

    threads = [threading.Thread(target=reader, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    ready.wait()
    for span_id in range(2, 102):
        task(hub, span_id)
    finish(hub)
    for thread in threads:
        thread.join(10)
    assert results == {"a": list(range(1, 103)), "b": list(range(1, 103))}
    assert hub.subscriber_count() == 0  # type: ignore[attr-defined]


def test_a_subscriber_that_falls_behind_is_cut_off_and_can_resume(make_hub: MakeHub) -> None:
    hub = make_hub(subscriber_max_lag=3)
    start(hub)

    async def scenario() -> int:
        async with hub.subscribe(RUN) as slow, hub.subscribe(RUN) as fast:
            await slow.next_batch(timeout=5)
            await fast.next_batch(timeout=5)
            for span_id in range(2, 7):  # five events while `slow` does not read
                task(hub, span_id)
                batch = await fast.next_batch(timeout=5)  # `fast` keeps up: they reached us
                assert [e.seq for e in batch or []] == [span_id]
            with pytest.raises(SubscriberLagged) as lagged:
                await slow.next_batch(timeout=5)
            return lagged.value.last_seq

    last_seq = asyncio.run(scenario())
    assert last_seq == 1
    finish(hub)
    assert asyncio.run(read_all(hub, after=last_seq)) == [2, 3, 4, 5, 6, 7]


def test_finished_runs_expire_and_running_ones_are_kept(make_hub: MakeHub) -> None:
    hub = make_hub(run_retention_seconds=0.05)
    start(hub, "a" * 32)
    finish(hub, "a" * 32)
    start(hub, "b" * 32)
    deadline = time.monotonic() + 5
    while get_run(hub, "a" * 32) is not None:
        assert time.monotonic() < deadline, "the finished run never expired"
        time.sleep(0.02)
    assert get_run(hub, "b" * 32) is not None


def test_get_run_folds_events_into_a_tree(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)
    hub.publish(RUN, Event("task_started", "outer", RUN, 2, 1, 10))
    hub.publish(RUN, Event("task_started", "inner", RUN, 3, 2, 20))
    hub.publish(
        RUN,
        Event("task_error", "inner", RUN, 3, 2, 30, duration_ns=10, error="x", error_type="E"),
    )
    run = get_run(hub)
    assert run is not None
    assert (run["name"], run["status"], run["last_seq"]) == ("p", "running", 4)
    outer = run["tree"]["children"][0]
    assert (outer["name"], outer["status"]) == ("outer", "running")
    inner = outer["children"][0]
    assert (inner["name"], inner["status"], inner["error"], inner["error_type"]) == (
        "inner",
        "error",
        "x",
        "E",
    )
    assert inner["duration_ms"] == 10 / 1e6
    finish(hub, status="error")
    done = get_run(hub)
    assert done is not None and done["status"] == "error" and done["ended_at"] is not None


def test_events_keep_every_field_through_the_hub(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)
    sent = Event(
        "task_completed",
        'naïve "quoted" name',
        RUN,
        0xABCDEF,
        1,
        1_700_000_000_123_456_789,
        duration_ns=1_234_567,
        error=None,
        attributes={"rows": 3, "tags": ["a", "b"]},
    )
    hub.publish(RUN, sent)
    finish(hub)

    async def scenario() -> list[Event]:
        events: list[Event] = []
        async with hub.subscribe(RUN) as subscription:
            while (batch := await subscription.next_batch(timeout=5)) is not None:
                assert batch, "timed out"
                events.extend(batch)
        return events

    received = asyncio.run(scenario())[1]
    assert received.to_dict() == {**sent.to_dict(), "seq": 2}
    assert received.sse == sent.sse.replace(b"id: 0\n", b"id: 2\n").replace(b'"seq":0', b'"seq":2')
