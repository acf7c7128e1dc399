"""A pipeline's history in Redis is every worker's: learnt on one, read on another, kept past
the runs' own retention, and bounded in keys (two a pipeline, with a TTL)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from otelstream import Settings
from otelstream.hubs.redis import RedisHub
from tests.hubs.test_hub_conformance import history_of, run_id_of, run_once
from tests.redis_server import RedisServer


def test_history_learnt_on_one_worker_is_read_on_another(empty_redis: RedisServer) -> None:
    one = RedisHub(empty_redis.url, Settings())
    other = RedisHub(empty_redis.url, Settings())
    try:
        for i, took in enumerate([100.0, 200.0, 300.0], start=1):
            run_once(one, run_id_of(i), took)
        history_of(one, 3)  # learnt by the first worker
        history = asyncio.run(other.history("p"))
        assert [r["run_id"] for r in history["runs"]] == [run_id_of(i) for i in (3, 2, 1)]
        assert history["expected_duration_ms"] == pytest.approx(200.0)
        assert history["tasks"]["outer / inner"]["expected_duration_ms"] == pytest.approx(100.0)
    finally:
        one.close()
        other.close()


def test_history_outlives_the_runs_and_expires_on_its_own(empty_redis: RedisServer) -> None:
    hub = RedisHub(empty_redis.url, Settings(run_retention_seconds=1, history_ttl_seconds=600))
    try:
        run_once(hub, run_id_of(1), 50.0)
        assert len(history_of(hub, 1)["runs"]) == 1
        client = redis.Redis.from_url(empty_redis.url)
        try:
            keys = [k.decode() for k in client.keys("otelstream:{h*")]
            assert len(keys) == 2  # outcomes and successes of the one pipeline
            for key in keys:
                assert 590_000 < client.pttl(key) <= 600_000
            deadline = time.monotonic() + 10  # the run itself goes after its retention
            while client.exists(f"otelstream:{{{run_id_of(1)}}}:meta"):
                assert time.monotonic() < deadline, "the run was never expired"
                time.sleep(0.05)
            assert len(asyncio.run(hub.history("p"))["runs"]) == 1
        finally:
            client.close()
    finally:
        hub.close()
