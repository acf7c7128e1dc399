"""Ids that survive restarts: the runs stream's seqs start at an epoch (the microsecond its
counter began), so a page resuming `GET /runs/live` with an id from before a restart (of a
memory-hub server, or of a Redis that lost its data) gets the runs stream again, never silence;
a run lost with a memory hub's restart is a 404 that says since when the server keeps runs.

Real uvicorn processes, a real redis-server (emptied with FLUSHALL, or restarted: it persists
nothing).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from otelstream.testing import iter_sse, read_events
from tests.conftest import EXAMPLE, app_process
from tests.redis_server import RedisServer

QUICK = {"pipeline_name": "example", "parameters": {"seconds": 0.01}}
APP = "tests.apps.redis_example:app"


def run_one(url: str) -> str:
    """A run, to its end; its id. Retries while the hub is unavailable (Redis coming back)."""
    with httpx.Client(timeout=20) as client:
        for _ in range(100):
            response = client.post(f"{url}/runs", json=QUICK)
            if response.status_code != 503:
                break
            time.sleep(0.1)
        assert response.status_code == 202, response.text
        run_id: str = response.json()["run_id"]
        events = read_events(client, "GET", f"{url}/runs/{run_id}/events")
        assert events[-1]["type"] == "pipeline_completed"
        return run_id


def live(url: str, count: int, last_id: str = "") -> tuple[list[dict[str, Any]], str]:
    """The first `count` events of the runs stream (resumed after `last_id`), and the last id;
    a stream that stays silent fails on the read timeout."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    found: list[dict[str, Any]] = []
    with httpx.Client(timeout=httpx.Timeout(20, read=8)) as client:
        for message in iter_sse(client, "GET", f"{url}/runs/live", headers=headers):
            found.append(json.loads(message.data))
            last_id = message.id
            if len(found) == count:
                break
    return found, last_id


def first_epoch(url: str) -> tuple[str, str]:
    """A run and the runs stream's id after its end, on a server just started."""
    run_id = run_one(url)
    events, last_id = live(url, 2)
    assert [(e["type"], e["run_id"]) for e in events] == [
        ("run_started", run_id),
        ("run_ended", run_id),
    ]
    return run_id, last_id


def after_the_restart(url: str, last_id: str) -> str:
    """A new run; resuming with the id from before the restart shows it (a full replay)."""
    run_id = run_one(url)
    events, new_id = live(url, 2, last_id)
    assert [(e["type"], e["run_id"]) for e in events] == [
        ("run_started", run_id),
        ("run_ended", run_id),
    ]
    assert int(new_id) > int(last_id)  # ids only grow: the next resume is an honest one
    return run_id


@pytest.mark.timeout(180)
def test_a_memory_hub_server_restarted() -> None:
    with app_process(EXAMPLE) as url:
        lost, last_id = first_epoch(url)
    with app_process(EXAMPLE) as url:  # the same app, started again
        after_the_restart(url, last_id)
        response = httpx.get(f"{url}/runs/{lost}", timeout=10)
        assert response.status_code == 404
        detail = response.json()["detail"]
        assert detail.startswith(f"unknown or expired run '{lost}': runs are kept in memory")
        assert "since the server started at 20" in detail


@contextmanager
def emptied(server: RedisServer, how: str) -> Iterator[None]:
    if how == "flushall":
        server.command("FLUSHALL")
    else:
        server.stop()
        server.start()
    yield


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["flushall", "restart"])
def test_a_redis_that_lost_its_data(redis: RedisServer, how: str) -> None:
    if redis.process is None:
        redis.start()
    redis.command("FLUSHALL")
    with app_process(APP, OTELSTREAM_HUB=redis.url) as url:
        _, last_id = first_epoch(url)
        with emptied(redis, how):
            after_the_restart(url, last_id)
