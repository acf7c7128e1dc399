"""Redis outages, told truthfully: two uvicorn workers on one real redis-server, killed and
restarted again and again while runs go on.

While Redis is down every read of a run answers 503 with Retry-After (never 404), starting
one answers 503, and an open stream ends with `events_lost`; once it is back, every run
started streams whole on both workers, with no false `events_lost`, and the workers hold no
more file descriptors or threads than before.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from otelstream.testing import iter_sse, read_events
from tests.conftest import EXAMPLE_SHAPE, app_subprocess, app_subprocesses, shape
from tests.redis_server import RedisServer, redis_server

APP = "tests.apps.redis_example:app"
CYCLES = 20
QUICK = {"pipeline_name": "example", "parameters": {"seconds": 0}}
SLOW = {"pipeline_name": "example", "parameters": {"seconds": 0.4}}


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    yield from redis_server()


def thread_names(pid: int) -> list[str]:
    names = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/comm") as comm:
            names.append(comm.read().strip())
    return sorted(names)


def resources(pid: int) -> tuple[int, int]:
    """(open file descriptors, threads) of a process.

    Not counted: uvloop's libuv pool (for getaddrinfo, as connections are made again), which
    starts its threads when first needed and never has more than UV_THREADPOOL_SIZE (4).
    """
    threads = thread_names(pid)
    libuv = threads.count("libuv-worker")
    assert libuv <= 4
    return len(os.listdir(f"/proc/{pid}/fd")), len(threads) - libuv


def whole(start_on: httpx.Client, watch_on: httpx.Client) -> None:
    """A run started on one worker streams whole there and on the other."""
    events = read_events(start_on, "POST", "/run-workflow", json=QUICK)
    assert shape(events) == EXAMPLE_SHAPE, events
    assert [e["seq"] for e in events] == list(range(1, 7))
    assert read_events(watch_on, "GET", f"/runs/{events[0]['run_id']}/events") == events


def unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.timeout(150)
def test_outages_answer_503_end_streams_and_leave_nothing_behind(redis: RedisServer) -> None:
    env = {"OTELSTREAM_HUB": redis.url}
    with (
        app_subprocesses(APP, 2, **env) as [(url_a, process_a), (url_b, process_b)],
        httpx.Client(base_url=url_a, timeout=10) as a,
        httpx.Client(base_url=url_b, timeout=10) as b,
    ):
        baseline: list[tuple[int, int]] = []
        for cycle in range(CYCLES):
            if cycle == CYCLES // 2:  # the thread pools (runs, anyio) have grown to their use
                baseline = [resources(process_a.pid), resources(process_b.pid)]
            # a run in flight on A, streamed on B, when Redis dies
            run_id = a.post("/runs", json=SLOW).json()["run_id"]
            seen: list[dict[str, Any]] = []
            started = threading.Event()

            def watch(
                run_id: str = run_id,
                seen: list[dict[str, Any]] = seen,
                started: threading.Event = started,
            ) -> None:
                for message in iter_sse(b, "GET", f"/runs/{run_id}/events"):
                    seen.append(json.loads(message.data))
                    started.set()

            watcher = threading.Thread(target=watch)
            watcher.start()
            assert started.wait(10)
            redis.kill()
            watcher.join(10)
            assert not watcher.is_alive(), "the stream did not end when Redis went away"
            assert seen[-1]["type"] == "events_lost", seen
            assert [e["seq"] for e in seen[:-1]] == list(range(1, len(seen)))

            for client in (a, b):
                unavailable(client.get(f"/runs/{run_id}"))
                unavailable(client.get(f"/runs/{run_id}/events"))
                unavailable(client.post("/runs", json=QUICK))
                unavailable(client.post("/run-workflow", json=QUICK))

            # B cannot know whether the run is still going; A, which runs it, can cancel it
            unavailable(b.delete(f"/runs/{run_id}"))

            redis.start()  # on the same port, empty, as after a crash
            whole(a, b)
            whole(b, a)
        for before, process in zip(baseline, (process_a, process_b), strict=True):
            fds, threads = resources(process.pid)
            assert fds <= before[0] + 2, f"file descriptors grew: {before[0]} -> {fds}"
            # a thread leaked per outage would be +10; a pool may take one or two more under load
            assert threads <= before[1] + 3, (
                f"threads grew: {before[1]} -> {thread_names(process.pid)}"
            )


@pytest.mark.timeout(60)
def test_the_client_waits_out_an_outage_and_its_run_streams_whole(redis: RedisServer) -> None:
    from otelstream.client import Client

    with app_subprocess(APP, OTELSTREAM_HUB=redis.url) as (url, _process):
        redis.kill()
        restart = threading.Timer(1.5, redis.start)
        restart.start()
        with Client(url, backoff=0.2) as client:
            started = time.monotonic()
            run = client.start("example", {"seconds": 0})  # 503, 503, …, then 202
            assert time.monotonic() - started >= 1.0, "it was started while Redis was down"
            events = list(client.events(run.run_id))
            assert shape(events) == EXAMPLE_SHAPE
            assert client.get_run(run.run_id)["status"] == "success"
        restart.join()
