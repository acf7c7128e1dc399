"""RedisHub, real redis-server: an event that cannot be stored costs that event, nothing else."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from otelstream import EventStreamProcessor, MemoryHub, Settings, _errors, streamed_run
from otelstream.events import Event
from otelstream.hubs import Hub
from otelstream.testing import next_batch
from tests.redis_server import RedisServer

if TYPE_CHECKING:
    from otelstream.hubs.redis import RedisHub

BAD_NAME = "task:" + os.fsdecode(b"report-\xff.csv")  # a lone surrogate, as from a file name


@pytest.fixture
def hub(redis: RedisServer) -> Iterator[RedisHub]:
    from otelstream.hubs.redis import RedisHub

    redis.command("FLUSHALL")
    hub = RedisHub(redis.url, Settings())
    yield hub
    hub.close()


async def frames(hub: Hub, run_id: str) -> list[bytes]:
    """The run's events as the wire carries them (SSE frames), read to the end."""
    out: list[bytes] = []
    async with hub.subscribe(run_id) as subscription:
        while (batch := await asyncio.wait_for(next_batch(subscription, 5), 10)) is not None:
            assert batch, "the run did not finish"
            out.extend(event.sse for event in batch)
    return out


def run_pipeline(tracer: trace.Tracer, provider: TracerProvider, bad: bool) -> str:
    with streamed_run("job", tracer_provider=provider, new_trace=True) as run:
        for n in range(5):
            with tracer.start_as_current_span(f"task:step_{n}"):
                pass
        if bad:
            with tracer.start_as_current_span(BAD_NAME):
                pass
    return run.run_id


def test_a_lone_surrogate_costs_no_other_run_anything_and_streams_as_from_memory(
    hub: RedisHub,
) -> None:
    memory = MemoryHub(Settings())
    provider = TracerProvider()
    provider.add_span_processor(EventStreamProcessor(hub))
    provider.add_span_processor(EventStreamProcessor(memory))
    tracer = provider.get_tracer("tests")
    run_ids: list[str] = []
    bad_run: list[str] = []
    barrier = threading.Barrier(21)

    def one(bad: bool) -> None:
        barrier.wait()
        run_id = run_pipeline(tracer, provider, bad)
        (bad_run if bad else run_ids).append(run_id)

    threads = [threading.Thread(target=one, args=(n == 10,)) for n in range(21)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    async def read() -> None:
        await hub.flush()
        for run_id in run_ids:
            got = await frames(hub, run_id)
            assert len(got) == 12, "every healthy run streams whole"
            assert got == await frames(memory, run_id)
        (bad,) = bad_run
        got = await frames(hub, bad)
        assert len(got) == 14
        assert got == await frames(memory, bad), "the same bytes on the wire from both hubs"
        assert b"report-\\udcff.csv" in got[-3]
        run = await hub.get_run(bad)
        assert run is not None and run["status"] == "success"
        assert run["tree"]["children"][-1]["name"] == "report-\udcff.csv"

    asyncio.run(read())
    assert hub.lost_events == 0
    provider.shutdown()


def test_an_event_redis_refuses_is_lost_alone_and_its_run_is_told(
    hub: RedisHub, redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    _errors.warnings_limit.reset()  # the warning below must not be held back by an earlier one
    broken, healthy = "e" * 32, [f"{n:032x}" for n in range(1, 6)]
    for run_id in (broken, *healthy):
        hub.publish(run_id, Event("pipeline_started", "p", run_id, 1, None, time.time_ns()))

    async def scenario() -> list[Event]:
        await hub.flush()
        async with hub.subscribe(broken) as subscription:
            first = await next_batch(subscription, 5)
            assert first is not None and [e.seq for e in first] == [1]
            # the run's summary is no longer a hash: Redis refuses its next writes (WRONGTYPE)
            redis.command("DEL", f"otelstream:{{{broken}}}:meta")
            redis.command("SET", f"otelstream:{{{broken}}}:meta", "not a hash")
            for run_id in (broken, *healthy):  # one pipelined batch
                hub.publish(run_id, Event("task_started", "t", run_id, 2, 1, time.time_ns()))
                end = Event("pipeline_completed", "p", run_id, 1, None, time.time_ns())
                hub.publish(run_id, end)
            told: list[Event] = []
            while (batch := await next_batch(subscription, 5)) is not None:
                assert batch, "the broken run's stream hangs"
                told.extend(batch)
            return told

    told = asyncio.run(scenario())
    assert [e.type for e in told] == ["events_lost"]
    asyncio.run(hub.flush())
    assert hub.lost_events == 2, "the broken run's two events, none of the others'"

    async def healthy_runs() -> None:
        for run_id in healthy:
            assert len(await frames(hub, run_id)) == 4  # with the open task's end

    asyncio.run(healthy_runs())
    warnings = [r.getMessage() for r in caplog.records if "not stored in Redis" in r.getMessage()]
    assert warnings and "WRONGTYPE" in warnings[0]
