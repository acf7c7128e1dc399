"""MemoryHub: sequencing, replay, wake-ups, lag, retention. No server: the hub alone."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from otelstream import MemoryHub, Settings, UnknownRun
from otelstream.events import Event
from otelstream.hubs import SubscriberLagged

RUN = "0af7651916cd43dd8448eb211c80319c"


def start(hub: MemoryHub, run_id: str = RUN) -> None:
    hub.publish(run_id, Event("pipeline_started", "p", run_id, 1, None, time.time_ns()))


def task(hub: MemoryHub, span_id: int, run_id: str = RUN) -> None:
    hub.publish(run_id, Event("task_started", f"t{span_id}", run_id, span_id, 1, time.time_ns()))


def finish(hub: MemoryHub, run_id: str = RUN, status: str = "success") -> None:
    event = Event("pipeline_completed", "p", run_id, 1, None, time.time_ns(), status=status)
    hub.publish(run_id, event)


async def read_all(hub: MemoryHub, run_id: str = RUN, after: int = 0) -> list[int]:
    seqs: list[int] = []
    async with hub.subscribe(run_id, after) as subscription:
        while (batch := await subscription.next_batch(timeout=5)) is not None:
            assert batch, "timed out"
            seqs.extend(event.seq for event in batch)
    return seqs


def test_sequence_has_no_gaps_or_repeats_across_threads() -> None:
    hub = MemoryHub(Settings(replay_events=50_000))
    start(hub)
    barrier = threading.Barrier(8)

    def publish(base: int) -> None:
        barrier.wait()
        for i in range(1_000):
            task(hub, base + i)

    threads = [threading.Thread(target=publish, args=(n * 10_000,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finish(hub)
    assert asyncio.run(read_all(hub)) == list(range(1, 8_003))


def test_replay_is_bounded_and_keeps_the_newest() -> None:
    hub = MemoryHub(Settings(replay_events=5))
    start(hub)
    for span_id in range(2, 10):
        task(hub, span_id)
    finish(hub)
    assert asyncio.run(read_all(hub)) == [6, 7, 8, 9, 10]
    assert asyncio.run(read_all(hub, after=8)) == [9, 10]


def test_resume_after_last_event_id() -> None:
    hub = MemoryHub()
    start(hub)
    task(hub, 2)
    task(hub, 3)
    finish(hub)
    assert asyncio.run(read_all(hub, after=2)) == [3, 4]
    assert asyncio.run(read_all(hub, after=4)) == []


def test_a_waiting_subscriber_is_woken_by_a_publisher_thread() -> None:
    hub = MemoryHub()
    start(hub)

    async def scenario() -> tuple[list[int], float]:
        async with hub.subscribe(RUN) as subscription:
            assert [e.seq for e in await subscription.next_batch(timeout=5) or []] == [1]
            timer = threading.Timer(0.05, task, args=(hub, 2))
            timer.start()
            began = time.monotonic()
            batch = await subscription.next_batch(timeout=30)  # no polling: woken, not timed out
            waited = time.monotonic() - began
            timer.join()
            return [e.seq for e in batch or []], waited

    seqs, waited = asyncio.run(scenario())
    assert seqs == [2]
    assert waited < 30


def test_an_idle_subscriber_gets_an_empty_batch_when_its_timeout_ends() -> None:
    hub = MemoryHub()
    start(hub)

    async def scenario() -> list[Event] | None:
        async with hub.subscribe(RUN, after=1) as subscription:
            return await subscription.next_batch(timeout=0.01)

    assert asyncio.run(scenario()) == []


def test_subscribers_on_two_event_loops_each_get_every_event() -> None:
    hub = MemoryHub()
    start(hub)
    results: dict[str, list[int]] = {}
    ready = threading.Barrier(3)

    def reader(name: str) -> None:
        async def run() -> list[int]:
            seqs: list[int] = []
            async with hub.subscribe(RUN) as subscription:
                ready.wait()
                while (batch := await subscription.next_batch(timeout=5)) is not None:
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
    assert hub.subscriber_count() == 0


def test_a_subscriber_that_falls_behind_is_cut_off_and_can_resume() -> None:
    hub = MemoryHub(Settings(subscriber_max_lag=3))
    start(hub)

    async def scenario() -> int:
        async with hub.subscribe(RUN) as subscription:
            await subscription.next_batch(timeout=5)  # the replay: any size is fine
            for span_id in range(2, 7):  # five events while it was not reading
                task(hub, span_id)
            with pytest.raises(SubscriberLagged) as lagged:
                await subscription.next_batch(timeout=5)
            return lagged.value.last_seq

    last_seq = asyncio.run(scenario())
    assert last_seq == 1
    finish(hub)
    assert asyncio.run(read_all(hub, after=last_seq)) == [2, 3, 4, 5, 6, 7]
    assert hub.subscriber_count() == 0


def test_a_live_subscriber_whose_events_were_evicted_is_cut_off() -> None:
    hub = MemoryHub(Settings(replay_events=4, subscriber_max_lag=100))
    start(hub)

    async def scenario() -> None:
        async with hub.subscribe(RUN) as subscription:
            await subscription.next_batch(timeout=5)
            for span_id in range(2, 10):
                task(hub, span_id)
            with pytest.raises(SubscriberLagged):
                await subscription.next_batch(timeout=5)

    asyncio.run(scenario())


def test_unknown_runs_and_events_before_the_start_are_refused() -> None:
    hub = MemoryHub()
    task(hub, 2)  # no pipeline_started: nothing to attach it to
    assert hub.dropped_events == 1
    with pytest.raises(UnknownRun):
        hub.subscribe(RUN)
    assert asyncio.run(hub.get_run(RUN)) is None


def test_events_after_the_end_are_dropped() -> None:
    hub = MemoryHub()
    start(hub)
    finish(hub)
    task(hub, 2)
    assert hub.dropped_events == 1
    assert asyncio.run(read_all(hub)) == [1, 2]


def test_finished_runs_are_evicted_by_count() -> None:
    hub = MemoryHub(Settings(max_finished_runs=2))
    runs = [f"{n:032x}" for n in range(1, 4)]
    for run_id in runs:
        start(hub, run_id)
        finish(hub, run_id)
    assert asyncio.run(hub.get_run(runs[0])) is None
    assert [asyncio.run(hub.get_run(r)) is not None for r in runs[1:]] == [True, True]


def test_finished_runs_are_evicted_by_age_and_running_ones_are_kept() -> None:
    hub = MemoryHub(Settings(run_retention_seconds=0.05))
    start(hub, "a" * 32)
    finish(hub, "a" * 32)
    start(hub, "b" * 32)
    time.sleep(0.1)
    assert asyncio.run(hub.get_run("a" * 32)) is None
    assert asyncio.run(hub.get_run("b" * 32)) is not None


def test_active_runs_are_bounded() -> None:
    hub = MemoryHub(Settings(max_active_runs=1))
    start(hub, "a" * 32)
    start(hub, "b" * 32)
    assert asyncio.run(hub.get_run("b" * 32)) is None
    finish(hub, "a" * 32)
    start(hub, "c" * 32)
    assert asyncio.run(hub.get_run("c" * 32)) is not None


def test_get_run_folds_events_into_a_tree() -> None:
    hub = MemoryHub()
    start(hub)
    hub.publish(RUN, Event("task_started", "outer", RUN, 2, 1, 10))
    hub.publish(RUN, Event("task_started", "inner", RUN, 3, 2, 20))
    hub.publish(
        RUN,
        Event("task_error", "inner", RUN, 3, 2, 30, duration_ns=10, error="x", error_type="E"),
    )
    run = asyncio.run(hub.get_run(RUN))
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
    done = asyncio.run(hub.get_run(RUN))
    assert done is not None and done["status"] == "error" and done["ended_at"] is not None
