"""The Redis writer's buffer is bounded in bytes (`OTELSTREAM_REDIS_BUFFER_BYTES`): an event is
weighed without being projected, and one that would take the buffer past the bound is counted
lost, its run's streams told (`events_lost`) and the operator warned, naming the setting."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

import pytest

from otelstream import Settings
from otelstream.events import Event
from otelstream.testing import next_batch
from tests.redis_server import RedisServer

if TYPE_CHECKING:
    from otelstream.hubs.redis import RedisHub

BIG = "x" * 8_000


@pytest.mark.internal_errors
def test_past_the_bytes_bound_events_are_lost_told_and_warned_of(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    from otelstream.hubs.redis import RedisHub

    redis.command("FLUSHALL")
    publisher = RedisHub(redis.url, Settings(redis_buffer_bytes=64 * 1024))
    reader: RedisHub = RedisHub(redis.url, Settings())
    run_id = "b" * 32
    try:
        publisher.publish(run_id, Event("pipeline_started", "p", run_id, 1, None, time.time_ns()))
        asyncio.run(publisher.flush())

        async def scenario() -> list[dict[str, Any]]:
            seen: list[dict[str, Any]] = []
            async with reader.subscribe(run_id) as subscription:
                seen += [e.to_dict() for e in await next_batch(subscription, timeout=5) or []]
                assert redis.process is not None
                os.kill(redis.process.pid, signal.SIGSTOP)  # Redis hangs: the buffer fills up
                try:
                    for span_id in range(2, 102):  # 100 events of ~9.8 KB: far past 64 KiB
                        task = Event("task_started", "t", run_id, span_id, 1, time.time_ns())
                        task.attributes = {"payload": BIG}
                        publisher.publish(run_id, task)
                    # at most 64 KiB buffered, and one batch taken from the buffer in flight
                    lost = publisher.lost_events
                    assert lost >= 100 - 2 * (64 * 1024 // 9_800), lost
                finally:
                    os.kill(redis.process.pid, signal.SIGCONT)
                while (batch := await next_batch(subscription, timeout=5)) is not None:
                    assert batch, "the stream hangs"
                    seen += [e.to_dict() for e in batch]
            return seen

        seen = asyncio.run(scenario())
        assert seen[-1]["type"] == "events_lost", seen[-1]
        kept = [event["seq"] for event in seen[:-1]]
        assert kept == list(range(1, len(kept) + 1))
        asyncio.run(publisher.flush())
        run = asyncio.run(reader.get_run(run_id))
        assert run is not None and run["events_lost"] == publisher.lost_events
    finally:
        publisher.close(timeout=2)
        reader.close(timeout=2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("OTELSTREAM_REDIS_BUFFER_BYTES" in w and run_id in w for w in warnings), warnings
