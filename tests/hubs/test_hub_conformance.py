"""One suite for every hub: what MemoryHub does, RedisHub does too, on a real redis-server
and on a real three-master Redis Cluster.

Where the two differ on purpose, the difference is in the hub's own test file:
MemoryHub refuses events before `pipeline_started`, RedisHub accepts a worker's
event that overtakes its run's start (it came from another process). Both bound
runs by count (RedisHub across every process sharing the Redis) and by age.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otelstream import MemoryHub, Settings, UnknownRun
from otelstream.events import DataEvent, Event
from otelstream.hubs import Hub, RunPage, SubscriberLagged
from otelstream.hubs._feed import Feed
from otelstream.testing import RedisClusterServers, next_batch
from tests.conftest import RUN, finish, start, step, task
from tests.redis_server import RedisServer

MakeHub = Callable[..., Hub]


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def make_hub(request: pytest.FixtureRequest) -> Iterator[MakeHub]:
    """Builds the hub under test with the given settings; Redis is emptied first."""
    if request.param == "memory":
        yield lambda **settings: MemoryHub(Settings(**settings))
        return
    from otelstream.hubs.redis import RedisHub

    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("empty_redis")
        url = server.url
    else:  # three masters: runs spread over the nodes
        cluster: RedisClusterServers = request.getfixturevalue("empty_redis_cluster")
        url = cluster.url
    hubs: list[RedisHub] = []

    def make(**settings: Any) -> Hub:
        hub = RedisHub(url, Settings(**settings))
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close()


async def read_all(hub: Hub, run_id: str = RUN, after: int = 0) -> list[int]:
    seqs: list[int] = []
    async with hub.subscribe(run_id, after) as subscription:
        while (batch := await next_batch(subscription, timeout=5)) is not None:
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
            first = await next_batch(subscription, timeout=5)
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
    finish(hub)  # and the 4,000 tasks left open end with it, right before
    assert asyncio.run(read_all(hub)) == list(range(1, 8_003))
    run = get_run(hub)
    assert run is not None and run["last_seq"] == 8_002
    assert len(run["tree"]["children"]) == 4_000
    assert {child["error_type"] for child in run["tree"]["children"]} == {"Unfinished"}


def test_replay_after_k_resumes_right_after_it(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)
    step(hub, 2)
    step(hub, 3)
    finish(hub)
    assert asyncio.run(read_all(hub, after=2)) == [3, 4]
    assert asyncio.run(read_all(hub, after=4)) == []


def test_a_late_subscriber_gets_the_whole_run(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)
    for span_id in range(2, 7):
        step(hub, span_id)
    finish(hub)
    assert asyncio.run(read_all(hub)) == list(range(1, 8))
    assert asyncio.run(read_all(hub)) == list(range(1, 8)), "and again"


def test_replay_is_bounded_and_keeps_the_newest(make_hub: MakeHub) -> None:
    hub = make_hub(replay_events=5)
    start(hub)
    for span_id in range(2, 10):
        step(hub, span_id)
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
            assert [e.seq for e in await next_batch(subscription, timeout=5) or []] == [1]
            timer = threading.Timer(0.05, task, args=(hub, 2))
            timer.start()
            batch = await next_batch(subscription, timeout=30)  # woken, not timed out
            timer.join()
            return [e.seq for e in batch or []]

    assert asyncio.run(scenario()) == [2]


def test_an_idle_subscriber_gets_an_empty_batch_when_its_timeout_ends(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)

    async def scenario() -> list[Event] | None:
        async with hub.subscribe(RUN) as subscription:
            assert [e.seq for e in await next_batch(subscription, timeout=5) or []] == [1]
            return await next_batch(subscription, timeout=0.01)

    assert asyncio.run(scenario()) == []


def test_the_stream_ends_with_the_run_and_later_events_are_dropped(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)
    step(hub, 2)

    async def scenario() -> tuple[list[int], list[Event] | None]:
        seqs: list[int] = []
        async with hub.subscribe(RUN) as subscription:
            while len(seqs) < 2:
                batch = await next_batch(subscription, timeout=5)
                assert batch, "timed out"
                seqs.extend(e.seq for e in batch)
            finish(hub)
            step(hub, 3)  # after the end: dropped
            while (batch := await next_batch(subscription, timeout=5)) is not None:
                assert batch, "timed out"
                seqs.extend(e.seq for e in batch)
            return seqs, await next_batch(subscription, timeout=0.01)

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
                while (batch := await next_batch(subscription, timeout=5)) is not None:
                    assert batch, "timed out"
                    seqs.extend(event.seq for event in batch)
            return seqs

        results[name] = asyncio.run(run())

    threads = [threading.Thread(target=reader, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    ready.wait()
    for span_id in range(2, 102):
        step(hub, span_id)
    finish(hub)
    for thread in threads:
        thread.join(10)
    assert results == {"a": list(range(1, 103)), "b": list(range(1, 103))}
    assert hub.subscriber_count() == 0  # type: ignore[attr-defined]


def test_many_subscribers_come_and_go_in_any_order_and_the_rest_get_every_event(
    make_hub: MakeHub,
) -> None:
    """Attach and detach change a run's readers in place: whoever leaves, early or late, in
    any order, the others are still woken for every event, and the count stays true."""
    hub = make_hub()
    start(hub)

    async def scenario() -> None:
        stacks = [contextlib.AsyncExitStack() for _ in range(300)]
        subscriptions = [await stack.enter_async_context(hub.subscribe(RUN)) for stack in stacks]
        assert hub.subscriber_count(RUN) == 300  # type: ignore[attr-defined]
        for index in [*range(0, 300, 3), *range(299, 0, -3)]:  # every 3rd, from both ends
            await stacks[index].aclose()
        stayed = [s for i, s in enumerate(subscriptions) if i % 3 == 1]
        assert hub.subscriber_count(RUN) == len(stayed)  # type: ignore[attr-defined]
        for span_id in range(2, 12):
            step(hub, span_id)
        finish(hub)
        for subscription in stayed:
            seqs: list[int] = []
            while (batch := await next_batch(subscription, timeout=5)) is not None:
                assert batch, "timed out"
                seqs.extend(event.seq for event in batch)
            assert seqs == list(range(1, 13))
        for index, stack in enumerate(stacks):
            if index % 3 == 1:
                await stack.aclose()
        assert hub.subscriber_count(RUN) == 0  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_a_subscriber_that_falls_behind_is_not_cut_while_its_events_are_kept(
    make_hub: MakeHub,
) -> None:
    """Being behind costs nothing: the lag setting of old cuts nobody, on resume or not."""
    hub = make_hub(subscriber_max_lag=3)
    start(hub)

    async def scenario() -> tuple[list[int], list[int]]:
        async with hub.subscribe(RUN) as slow, hub.subscribe(RUN, after=1) as resumed:
            await next_batch(slow, timeout=5)
            assert await next_batch(resumed, timeout=0.01) == []  # at the head, nothing new
            for span_id in range(2, 12):  # ten events while neither reads
                task(hub, span_id)
            await asyncio.sleep(0.2)  # let a Redis hub's reader bring them in
            got_slow: list[int] = []
            got_resumed: list[int] = []
            while len(got_slow) < 10:
                got_slow += [e.seq for e in await next_batch(slow, timeout=5) or []]
            while len(got_resumed) < 10:
                got_resumed += [e.seq for e in await next_batch(resumed, timeout=5) or []]
            return got_slow, got_resumed

    assert asyncio.run(scenario()) == (list(range(2, 12)), list(range(2, 12)))


def test_a_subscriber_whose_position_was_evicted_is_cut_and_can_resume(make_hub: MakeHub) -> None:
    hub = make_hub(replay_events=4)
    start(hub)

    async def scenario() -> tuple[int, bytes]:
        async with hub.subscribe(RUN) as cut, hub.subscribe(RUN) as framed:
            await next_batch(cut, timeout=5)
            assert await framed.next_frames(timeout=5)  # type: ignore[attr-defined]
            for span_id in range(2, 10):  # eight events: four of them are evicted unread
                step(hub, span_id)
            await asyncio.sleep(0.2)
            with pytest.raises(SubscriberLagged) as lagged:
                while True:
                    await next_batch(cut, timeout=5)
            notice: bytes = await framed.next_frames(timeout=5)  # type: ignore[attr-defined]
            return lagged.value.last_seq, notice

    last_seq, notice = asyncio.run(scenario())
    assert last_seq == 1
    assert notice.startswith(b"data: ") and b"id:" not in notice
    data = json.loads(notice[6:])
    assert (data["type"], data["reason"], data["last_seq"]) == ("stream_overflow", "evicted", 1)
    finish(hub)
    assert asyncio.run(read_all(hub, after=1)) == [7, 8, 9, 10]  # what is kept


def test_frames_are_the_events_wire_form_joined(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)
    step(hub, 2)
    finish(hub)

    async def scenario() -> tuple[bytes, list[Event]]:
        async with hub.subscribe(RUN) as framed, hub.subscribe(RUN) as decoded:
            chunks = b""
            while (chunk := await framed.next_frames(timeout=5)) is not None:  # type: ignore[attr-defined]
                chunks += chunk
            events: list[Event] = []
            while (batch := await next_batch(decoded, timeout=5)) is not None:
                events += batch
            return chunks, events

    chunks, events = asyncio.run(scenario())
    assert chunks == b"".join(event.sse for event in events)
    assert [e.seq for e in events] == [1, 2, 3]
    assert chunks.count(b"\n\n") == 3 and chunks.startswith(b"id: 1\ndata: {")


def test_readers_at_one_cursor_share_a_chunk_and_each_gets_exactly_its_stream(
    make_hub: MakeHub,
) -> None:
    """A burst wakes every reader of a run in one loop turn; the first at a cursor joins the
    frames and the others at that cursor take the same chunk. A reader elsewhere, one with a
    smaller chunk bound and one reading events each get exactly their own stream."""
    hub = make_hub()
    start(hub)

    async def scenario() -> tuple[list[bytes], bytes, list[bytes], list[int]]:
        async with contextlib.AsyncExitStack() as stack:
            same = [await stack.enter_async_context(hub.subscribe(RUN)) for _ in range(3)]
            await asyncio.sleep(0.2)  # past the start: every reader is at one cursor
            for subscription in same:
                assert await subscription.next_frames(timeout=5)  # type: ignore[attr-defined]
            later = await stack.enter_async_context(hub.subscribe(RUN, 1))
            small = await stack.enter_async_context(hub.subscribe(RUN, 1))
            decoded = await stack.enter_async_context(hub.subscribe(RUN, 1))
            for span_id in range(2, 82):  # 80 events while nobody reads: one chunk each
                step(hub, span_id)
            finish(hub)
            await asyncio.sleep(0.3)  # (through Redis: read back into the feed)
            streams = [b"" for _ in same]
            for i, subscription in enumerate(same):
                while (chunk := await subscription.next_frames(timeout=5)) is not None:  # type: ignore[attr-defined]
                    streams[i] += chunk
            rest = b""
            while (chunk := await later.next_frames(timeout=5)) is not None:  # type: ignore[attr-defined]
                rest += chunk
            pieces = []
            while (chunk := await small.next_frames(timeout=5, max_bytes=2_000)) is not None:  # type: ignore[attr-defined]
                pieces.append(chunk)
            seqs: list[int] = []
            while (batch := await next_batch(decoded, timeout=5)) is not None:
                seqs += [event.seq for event in batch]
            return streams, rest, pieces, seqs

    streams, rest, pieces, seqs = asyncio.run(scenario())
    assert streams[0] == streams[1] == streams[2] == rest
    assert [int(line[4:]) for line in rest.split(b"\n") if line.startswith(b"id: ")] == list(
        range(2, 83)
    )
    assert b"".join(pieces) == rest and len(pieces) > 1
    assert all(len(piece) <= 2_000 for piece in pieces)
    assert seqs == list(range(2, 83))


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


def test_a_task_still_open_when_its_run_ends_ends_in_the_stream_before_the_run(
    make_hub: MakeHub,
) -> None:
    """Its process died (a propagated task's worker killed) or the run did not wait for it:
    later events are dropped, so it would otherwise say `running` forever, on the page and in
    the terminal. The stream ends it (`task_error`, Unfinished) right before the run, a child
    before its parent, and the run's tree says the same."""
    hub = make_hub()
    start(hub)
    hub.publish(RUN, Event("task_started", "handed_off", RUN, 2, 1, 10))
    hub.publish(RUN, Event("task_started", "its_child", RUN, 4, 2, 15))
    hub.publish(RUN, Event("task_started", "done", RUN, 3, 1, 10))
    hub.publish(RUN, Event("task_completed", "done", RUN, 3, 1, 20, duration_ns=10))
    running = get_run(hub)
    assert running is not None and running["tree"]["children"][0]["status"] == "running"
    finish(hub)
    events = asyncio.run(_frames(hub, RUN))
    assert [e["seq"] for e in events] == list(range(1, 9))
    ends = [(e["type"], e["name"], e.get("error_type")) for e in events[5:]]
    assert ends == [
        ("task_error", "its_child", "Unfinished"),
        ("task_error", "handed_off", "Unfinished"),
        ("pipeline_completed", "p", None),
    ]
    assert events[-1]["status"] == "success"
    assert events[5]["timestamp"] == events[6]["timestamp"] == events[-1]["timestamp"]
    assert "died" in events[5]["error"] and events[5]["parent_span_id"] == f"{2:016x}"
    run = get_run(hub)
    assert run is not None and run["status"] == "success"
    lost, done = run["tree"]["children"]
    assert (lost["name"], lost["status"], lost["error_type"]) == (
        "handed_off",
        "error",
        "Unfinished",
    )
    assert "died" in lost["error"] and lost["ended_at"] == run["ended_at"]
    assert lost["children"][0]["error_type"] == "Unfinished"
    assert (done["status"], done["error_type"]) == ("success", None)


def test_a_cancelled_runs_open_tasks_end_as_cancelled_with_it(make_hub: MakeHub) -> None:
    hub = make_hub()
    start(hub)
    hub.publish(RUN, Event("task_started", "slow", RUN, 2, 1, 10))
    finish(hub, status="cancelled")
    *_, task_end, end = asyncio.run(_frames(hub, RUN))
    assert (task_end["type"], task_end["name"], task_end["error_type"]) == (
        "task_error",
        "slow",
        "Unfinished",
    )
    assert "cancelled" in task_end["error"] and end["status"] == "cancelled"


def test_a_runs_end_waits_for_its_hand_offs_up_to_the_bound(make_hub: MakeHub) -> None:
    """`propagation.inject` begins a hand-off, `attached` finishes it (here: another thread);
    the runner's wait returns once none is out, or says how many still are."""
    hub = make_hub()
    start(hub)
    assert hub.wait_handoffs(RUN, 5) == 0, "none begun: nothing to wait for"
    hub.handoff(RUN, "h1", False)
    finisher = threading.Timer(0.2, hub.handoff, (RUN, "h1", True))
    finisher.start()
    began = time.monotonic()
    assert hub.wait_handoffs(RUN, 10) == 0
    assert time.monotonic() - began < 5
    finisher.join()
    hub.handoff(RUN, "h2", False)
    hub.handoff(RUN, "h3", False)
    hub.handoff(RUN, "h3", True)
    assert hub.wait_handoffs(RUN, 0.3) == 1, "h2 never finished"


def test_a_hand_off_that_ends_after_the_hub_closed_raises_nothing(make_hub: MakeHub) -> None:
    """Work handed off may finish (`attached` exits) after the app shut its hub: the worker's
    code goes on as if nothing happened, as a publish to a closed hub does."""
    hub = make_hub()
    start(hub)
    hub.handoff(RUN, "h1", False)
    hub.close()
    hub.handoff(RUN, "h1", True)
    hub.handoff(RUN, "h2", False)


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


def test_a_services_span_keeps_its_service_in_the_runs_tree(make_hub: MakeHub) -> None:
    """A span another service sent over OTLP: `GET /runs/{id}`'s tree (and so the client's)
    names the service on its node, running and once the run is over; local spans name none."""
    hub = make_hub()
    start(hub)
    task(hub, 2)
    served = Event("task_started", "GET /price", RUN, 3, 2, time.time_ns(), service="pricing")
    hub.publish(RUN, served)

    def nodes() -> tuple[dict[str, Any], dict[str, Any]]:
        if hasattr(hub, "flush"):
            asyncio.run(hub.flush())
        found = asyncio.run(hub.get_run(RUN))
        assert found is not None
        (local,) = found["tree"]["children"]
        (remote,) = local["children"]
        return local, remote

    local, remote = nodes()
    assert remote["service"] == "pricing" and "service" not in local
    finish(hub)
    time.sleep(0.3)  # the memory hub seals a run on its own thread
    local, remote = nodes()
    assert remote["service"] == "pricing" and "service" not in local


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
            while (batch := await next_batch(subscription, timeout=5)) is not None:
                assert batch, "timed out"
                events.extend(batch)
        return events

    received = asyncio.run(scenario())[1]
    assert received.to_dict() == {**sent.to_dict(), "seq": 2}
    assert received.sse == sent.sse.replace(b"id: 0\n", b"id: 2\n").replace(b'"seq":0', b'"seq":2')


def test_task_log_and_progress_events_keep_their_fields_through_the_hub(
    make_hub: MakeHub,
) -> None:
    hub = make_hub()
    start(hub)
    data = {"level": "WARN", "message": 'naïve "quoted"', "logger": "etl"}
    sent = [
        DataEvent("task_log", "etl", RUN, 0xABC, 1_700_000_000_000_000_001, data),
        DataEvent("task_progress", "p", RUN, 0xABC, 1_700_000_000_000_000_002, {"done": 3}),
    ]
    for event in sent:
        hub.publish(RUN, event)
    finish(hub)

    async def scenario() -> list[Event]:
        events: list[Event] = []
        async with hub.subscribe(RUN) as subscription:
            while (batch := await next_batch(subscription, timeout=5)) is not None:
                assert batch, "timed out"
                events.extend(batch)
        return events

    received = asyncio.run(scenario())[1:3]
    assert [e.to_dict() for e in received] == [
        {**sent[0].to_dict(), "seq": 2},
        {**sent[1].to_dict(), "seq": 3},
    ]


# -- the runs list and the runs stream --------------------------------------------------------

RUNS = [f"{i:032x}" for i in range(1, 6)]


def _start_named(hub: Hub, run_id: str, name: str) -> None:
    hub.publish(run_id, Event("pipeline_started", name, run_id, 1, None, time.time_ns()))


def _list(hub: Hub, **query: Any) -> RunPage:
    try:
        return asyncio.run(hub.list_runs(**query))
    except NotImplementedError:
        pytest.xfail(f"{type(hub).__name__} has no runs list yet")


def test_the_runs_list_is_newest_first_filtered_and_paged(make_hub: MakeHub) -> None:
    hub = make_hub()
    for index, run_id in enumerate(RUNS):
        _start_named(hub, run_id, "ingest" if index % 2 else "etl")
    finish(hub, RUNS[0])
    error = Event(
        "pipeline_completed", "ingest", RUNS[1], 1, None, time.time_ns(), duration_ns=2_000_000
    )
    error.status, error.error, error.error_type = "error", "boom", "ValueError"
    hub.publish(RUNS[1], error)
    if hasattr(hub, "flush"):
        asyncio.run(hub.flush())

    page = _list(hub)
    assert [run["run_id"] for run in page.runs] == RUNS[::-1] and page.next_cursor is None
    failed = page.runs[-2]
    assert failed == {
        "run_id": RUNS[1],
        "name": "ingest",
        "status": "error",
        "started_at": failed["started_at"],
        "duration_ms": 2.0,
        "error_type": "ValueError",
    }
    assert page.runs[0]["status"] == "running" and page.runs[0]["duration_ms"] is None
    assert [r["run_id"] for r in _list(hub, pipeline="ingest").runs] == [RUNS[3], RUNS[1]]
    assert [r["run_id"] for r in _list(hub, status="running").runs] == RUNS[:1:-1]
    assert [r["run_id"] for r in _list(hub, status="success").runs] == [RUNS[0]]

    first = _list(hub, limit=2)
    assert [r["run_id"] for r in first.runs] == [RUNS[4], RUNS[3]]
    second = _list(hub, limit=2, cursor=first.next_cursor)
    assert [r["run_id"] for r in second.runs] == [RUNS[2], RUNS[1]]
    third = _list(hub, limit=2, cursor=second.next_cursor)
    assert [r["run_id"] for r in third.runs] == [RUNS[0]] and third.next_cursor is None
    with pytest.raises(ValueError):
        _list(hub, cursor="not a cursor")


def test_a_runs_error_log_count_reaches_its_end_event_and_its_summary(make_hub: MakeHub) -> None:
    hub = make_hub()
    _start_named(hub, RUNS[0], "etl")
    _start_named(hub, RUNS[1], "etl")
    finish(hub, RUNS[0])
    end = Event("pipeline_completed", "etl", RUNS[1], 1, None, time.time_ns(), errors_logged=3)
    end.status, end.duration_ns = "success", 1_000_000
    hub.publish(RUNS[1], end)
    if hasattr(hub, "flush"):
        asyncio.run(hub.flush())

    runs = {run["run_id"]: run for run in _list(hub).runs}
    assert runs[RUNS[1]]["errors_logged"] == 3 and runs[RUNS[1]]["status"] == "success"
    assert "errors_logged" not in runs[RUNS[0]]  # only when there were some
    frames = asyncio.run(_frames(hub, RUNS[1]))
    assert frames[-1]["type"] == "pipeline_completed" and frames[-1]["errors_logged"] == 3

    async def ended() -> dict[str, Any]:
        async with hub.subscribe_runs(0) as subscription:
            found: list[dict[str, Any]] = []
            while len(found) < 4:
                batch = await next_batch(subscription, timeout=5)
                assert batch, "timed out"
                found.extend(event.to_dict() for event in batch)
        return next(e for e in found if e["type"] == "run_ended" and e["run_id"] == RUNS[1])

    assert asyncio.run(ended())["errors_logged"] == 3


async def _frames(hub: Hub, run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async with hub.subscribe(run_id, 0) as subscription:
        while not found or found[-1]["type"] != "pipeline_completed":
            batch = await next_batch(subscription, timeout=5)
            assert batch, "timed out"
            found.extend(json.loads(event.to_json()) for event in batch)
    return found


def test_the_runs_stream_tells_starts_and_ends_and_resumes(make_hub: MakeHub) -> None:
    hub = make_hub()
    _start_named(hub, RUNS[0], "etl")
    finish(hub, RUNS[0])

    async def read(after: int, count: int, live: Callable[[], None] | None = None) -> list[Any]:
        try:
            subscription = hub.subscribe_runs(after)
        except NotImplementedError:
            pytest.xfail(f"{type(hub).__name__} has no runs stream yet")
        found: list[dict[str, Any]] = []
        async with subscription:
            if live is not None:
                threading.Thread(target=live).start()
            while len(found) < count:
                batch = await next_batch(subscription, timeout=5)
                assert batch, "timed out"
                found.extend(event.to_dict() for event in batch)
        return found

    events = asyncio.run(read(0, 2))
    epoch = events[0]["seq"] - 1  # the stream's seqs start at an epoch: its start's µs
    assert epoch > time.time_ns() // 1000 - 600_000_000
    assert [(e["type"], e["seq"], e["run_id"]) for e in events] == [
        ("run_started", epoch + 1, RUNS[0]),
        ("run_ended", epoch + 2, RUNS[0]),
    ]
    assert events[0]["status"] == "running"  # as it was then, though replayed after its end
    assert events[1]["status"] == "success" and events[1]["name"] == "etl"
    assert set(events[1]) >= {"started_at", "duration_ms", "error_type"}

    # resumed after the second: only what came since, here live from another thread
    resumed = asyncio.run(read(epoch + 2, 1, live=lambda: _start_named(hub, RUNS[1], "ingest")))
    assert [(e["type"], e["seq"], e["run_id"]) for e in resumed] == [
        ("run_started", epoch + 3, RUNS[1])
    ]


POISON = 999_999_999_999_999_999
"""A `Last-Event-ID` far beyond any run's last seq: a lying or buggy client."""


def test_a_position_beyond_the_head_is_the_head_and_moves_no_other_reader(
    make_hub: MakeHub,
) -> None:
    """One poisoned subscriber, entered first, beside ten honest ones: it is treated as at the
    run's head (it gets what comes next), and the honest ones get every event."""
    hub = make_hub()
    start(hub)
    step(hub, 2)
    asyncio.run(hub.flush())

    async def drain(subscription: Any) -> list[int]:
        seqs: list[int] = []
        while (batch := await next_batch(subscription, timeout=5)) is not None:
            assert batch, "timed out"
            seqs.extend(event.seq for event in batch)
        return seqs

    async def scenario() -> tuple[list[int], list[list[int]]]:
        async with hub.subscribe(RUN, POISON) as poisoned:
            assert poisoned.last_seq == 2
            honest = [hub.subscribe(RUN) for _ in range(10)]
            for subscription in honest:
                await subscription.__aenter__()
            try:
                publisher = threading.Thread(
                    target=lambda: [step(hub, span_id) for span_id in range(3, 8)] + [finish(hub)]
                )
                publisher.start()
                results = await asyncio.gather(drain(poisoned), *map(drain, honest))
                publisher.join(5)
            finally:
                for subscription in honest:
                    await subscription.__aexit__(None, None, None)
        return results[0], results[1:]

    poisoned, honest = asyncio.run(scenario())
    assert poisoned == list(range(3, 9))
    assert honest == [list(range(1, 9))] * 10
    assert asyncio.run(read_all(hub, after=POISON)) == []  # over: nothing more to send


def test_a_runs_stream_position_beyond_the_head_is_the_head(make_hub: MakeHub) -> None:
    hub = make_hub()
    _start_named(hub, RUNS[0], "etl")
    asyncio.run(hub.flush())

    async def scenario() -> tuple[list[str], list[str]]:
        try:
            poisoned, honest = hub.subscribe_runs(POISON), hub.subscribe_runs()
        except NotImplementedError:
            pytest.xfail(f"{type(hub).__name__} has no runs stream yet")
        seen: tuple[list[str], list[str]] = ([], [])
        async with poisoned, honest:
            threading.Thread(target=lambda: _start_named(hub, RUNS[1], "ingest")).start()
            for subscription, found in zip((poisoned, honest), seen, strict=True):
                while RUNS[1] not in found:
                    batch = await next_batch(subscription, timeout=5)
                    assert batch, "timed out"
                    found.extend(event.to_dict()["run_id"] for event in batch)
        return seen

    poisoned, honest = asyncio.run(scenario())
    assert poisoned == [RUNS[1]]
    assert honest == [RUNS[0], RUNS[1]]


def test_a_runs_stream_read_before_any_run_gets_the_first(make_hub: MakeHub) -> None:
    hub = make_hub()

    async def scenario() -> list[dict[str, Any]]:
        try:
            subscription = hub.subscribe_runs()
        except NotImplementedError:
            pytest.xfail(f"{type(hub).__name__} has no runs stream yet")
        async with subscription:
            assert await next_batch(subscription, timeout=0.05) == []
            threading.Thread(target=lambda: _start_named(hub, RUNS[0], "etl")).start()
            batch = await next_batch(subscription, timeout=5)
            assert batch, "timed out"
            return [event.to_dict() for event in batch]

    events = asyncio.run(scenario())
    assert [(e["type"], e["run_id"]) for e in events] == [("run_started", RUNS[0])]


def test_a_span_is_first_seen_once_across_hubs_sharing_the_store(make_hub: MakeHub) -> None:
    """The OTLP receiver asks which spans of a batch are new: a batch sent again (to this
    worker or another sharing the hub) is new nowhere; a run the hub does not know remembers
    nothing; the bound lets the oldest go."""
    hub = make_hub(max_open_spans=3)
    other = hub if isinstance(hub, MemoryHub) else make_hub(max_open_spans=3)  # one store
    start(hub)
    asyncio.run(hub.flush())

    async def scenario() -> list[set[str]]:
        return [
            await hub.first_seen(RUN, ["a", "b"]),
            await other.first_seen(RUN, ["a", "b", "c"]),
            await hub.first_seen(RUN, ["a", "b", "c"]),
            await hub.first_seen("f" * 32, ["a"]),
            await hub.first_seen("f" * 32, ["a"]),
            await hub.first_seen(RUN, []),
        ]

    first, second, again, unknown, unknown_again, empty = asyncio.run(scenario())
    assert first == {"a", "b"}
    assert second == {"c"}
    assert again == set() and empty == set()
    assert unknown == unknown_again == {"a"}
    asyncio.run(hub.first_seen(RUN, ["d", "e", "f", "g"]))  # past the bound: still answers
    assert asyncio.run(hub.first_seen(RUN, ["g"])) == set()


def test_a_reader_woken_with_a_runs_end_reads_the_run_as_ended_everywhere(
    make_hub: MakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """State before notice: the thread that wakes the run's readers with `pipeline_completed`
    is held right there, at the wake, while another worker (on the memory hub, the same hub)
    reads the run every way there is; each already says it ended. The order is proved, not
    the timing: the woken readers wait for the reads to be over."""
    hub = make_hub()
    other = hub if isinstance(hub, MemoryHub) else make_hub()  # another worker, same Redis
    start(hub)
    task(hub, 2)
    asyncio.run(hub.flush())

    async def reads() -> dict[str, Any]:
        run, page, position = (
            await other.get_run(RUN),
            await other.list_runs(),
            await other.position(RUN),
        )
        lifecycle: list[dict[str, Any]] = []
        async with other.subscribe_runs(0) as runs:
            while batch := await next_batch(runs, timeout=0.2):
                lifecycle.extend(event.to_dict() for event in batch)
        return {
            "get_run": None if run is None else run["status"],
            "runs": [summary["status"] for summary in page.runs if summary["run_id"] == RUN],
            "position": None if position is None else (position.finished, position.status),
            "live": [e["type"] for e in lifecycle if e["run_id"] == RUN],
        }

    seen: list[dict[str, Any]] = []
    wake = Feed.wake

    def held_wake(feed: Feed) -> None:
        if feed.key == RUN and feed.last_seq >= 4 and not seen:  # its end is there to take
            with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own
                seen.append(pool.submit(asyncio.run, reads()).result(10))
        wake(feed)

    monkeypatch.setattr(Feed, "wake", held_wake)

    async def read_to_the_end() -> list[int]:
        async with hub.subscribe(RUN) as subscription:
            await next_batch(subscription, timeout=5)  # attached: the end reaches it live
            ending = threading.Thread(target=finish, args=(hub, RUN, "error"))
            ending.start()
            seqs = await read_all(hub)
            await asyncio.to_thread(ending.join, 10)
            return seqs

    assert asyncio.run(read_to_the_end()) == [1, 2, 3, 4]  # 3: the open task's end
    assert seen == [
        {
            "get_run": "error",
            "runs": ["error"],
            "position": (True, "error"),
            "live": ["run_started", "run_ended"],
        }
    ]


# -- history (issue 31) -----------------------------------------------------------------------


def run_once(hub: Hub, run_id: str, took_ms: float, status: str = "success") -> None:
    """A run of `p` of `took_ms`, its task `outer / inner` half of it."""
    t0 = time.time_ns() - int(took_ms * 1e6)
    half = int(took_ms * 1e6 / 2)
    hub.publish(run_id, Event("pipeline_started", "p", run_id, 1, None, t0))
    hub.publish(run_id, Event("task_started", "outer", run_id, 2, 1, t0))
    hub.publish(run_id, Event("task_started", "inner", run_id, 3, 2, t0))
    end = Event("task_completed", "inner", run_id, 3, 2, t0 + half, duration_ns=half)
    hub.publish(run_id, end)
    end = Event("task_completed", "outer", run_id, 2, 1, t0 + half, duration_ns=half)
    hub.publish(run_id, end)
    hub.publish(
        run_id,
        Event("pipeline_completed", "p", run_id, 1, None, t0 + int(took_ms * 1e6), status=status),
    )


def history_of(hub: Hub, runs: int, pipeline: str = "p") -> dict[str, Any]:
    """The pipeline's history once it holds `runs` runs (the hub learns off the span thread)."""
    deadline = time.monotonic() + 10
    while True:
        history = asyncio.run(hub.history(pipeline))
        if len(history["runs"]) >= runs or time.monotonic() > deadline:
            return history
        time.sleep(0.02)


def run_id_of(i: int) -> str:
    return f"{i:032x}"


def test_a_pipeline_that_has_not_run_has_no_history(make_hub: MakeHub) -> None:
    history = asyncio.run(make_hub().history("never"))
    assert history["runs"] == [] and history["durations_ms"] == [] and history["tasks"] == {}
    assert "expected_duration_ms" not in history and history["last_status"] is None


def test_history_keeps_the_durations_of_successful_runs_and_their_tasks(
    make_hub: MakeHub,
) -> None:
    hub = make_hub()
    for i, took in enumerate([100.0, 300.0, 200.0], start=1):
        run_once(hub, run_id_of(i), took)
    history = history_of(hub, 3)
    assert [r["run_id"] for r in history["runs"]] == [run_id_of(3), run_id_of(2), run_id_of(1)]
    assert history["durations_ms"] == pytest.approx([200.0, 300.0, 100.0])
    assert history["expected_duration_ms"] == pytest.approx(200.0)
    assert history["expected_p90_ms"] == pytest.approx(280.0)
    assert set(history["tasks"]) == {"outer", "outer / inner"}
    inner = history["tasks"]["outer / inner"]
    assert inner["durations_ms"] == pytest.approx([100.0, 150.0, 50.0])
    assert inner["expected_duration_ms"] == pytest.approx(100.0)
    assert history["success_rate"] == 1.0 and history["last_status"] == "success"


def test_failed_and_cancelled_runs_are_outcomes_not_usual_durations(make_hub: MakeHub) -> None:
    hub = make_hub()
    run_once(hub, run_id_of(1), 100.0)
    run_once(hub, run_id_of(2), 900.0, status="error")
    run_once(hub, run_id_of(3), 800.0, status="cancelled")
    history = history_of(hub, 3)
    assert [r["status"] for r in history["runs"]] == ["cancelled", "error", "success"]
    assert history["durations_ms"] == pytest.approx([100.0])
    assert "expected_duration_ms" not in history  # fewer than 3 samples
    assert history["tasks"]["outer"]["durations_ms"] == pytest.approx([50.0])
    assert history["success_rate"] == pytest.approx(1 / 3)
    assert history["last_status"] == "cancelled"


def test_history_is_bounded_to_the_last_runs(make_hub: MakeHub) -> None:
    hub = make_hub(history_runs=3)
    for i in range(1, 6):
        run_once(hub, run_id_of(i), 10.0 * i)
    deadline = time.monotonic() + 10
    while asyncio.run(hub.history("p"))["runs"][0]["run_id"] != run_id_of(5):
        assert time.monotonic() < deadline, "the last run was never learnt"
        time.sleep(0.02)
    history = asyncio.run(hub.history("p"))
    assert [r["run_id"] for r in history["runs"]] == [run_id_of(5), run_id_of(4), run_id_of(3)]
    assert history["durations_ms"] == pytest.approx([50.0, 40.0, 30.0])


def test_a_recorded_outcome_is_read_back(make_hub: MakeHub) -> None:
    hub = make_hub()
    outcome = {
        "run_id": RUN,
        "status": "success",
        "started_at": None,
        "duration_ms": 5.0,
        "tasks": {"a / b": 2.0},
    }
    asyncio.run(hub.record_history("q{x}", outcome))  # type: ignore[arg-type]
    history = asyncio.run(hub.history("q{x}"))
    assert history["runs"][0]["run_id"] == RUN and history["durations_ms"] == [5.0]
    assert history["tasks"] == {"a / b": {"durations_ms": [2.0]}}


def test_a_hub_closes_at_once_and_leaves_no_thread_behind(make_hub: MakeHub) -> None:
    """A reader is watching (its run gets events) as the hub closes: close returns in well
    under its 5 s bound and stops the hub's I/O thread. (redis-py can swallow the cancellation
    that reaches a read in flight: a loop that went on held the close for its whole bound, and
    about one close in two left the thread looping.)"""

    def io_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "otelstream-redis"}

    before = io_threads()
    took = []
    for _ in range(8):
        hub = make_hub()
        start(hub)

        async def read_one(hub: Hub = hub) -> None:
            async with hub.subscribe(RUN) as subscription:
                task(hub, 2)
                assert await next_batch(subscription, timeout=5), "the event never came"

        asyncio.run(read_one())
        began = time.monotonic()
        hub.close()
        took.append(time.monotonic() - began)
    assert max(took) < 2, took
    assert not io_threads() - before
