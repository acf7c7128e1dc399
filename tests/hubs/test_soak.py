"""Soak: many runs, clients that leave at random points; afterwards nothing is left behind.

`OTELSTREAM_SOAK_RUNS` sets the number of runs (CI runs the default, a short version;
`OTELSTREAM_SOAK_RUNS=5000 scripts/test tests/hubs/test_soak.py -s` is the long one). The
figures are printed; the test asserts only that every whole stream was whole and that no
subscriber, task, thread or file descriptor leaked.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from otelstream.fastapi import create_router
from otelstream.testing import UvicornServer, iter_sse, read_events
from tests.conftest import make_telemetry

RUNS = int(os.environ.get("OTELSTREAM_SOAK_RUNS", "1000"))
CLIENTS = 8


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def other_threads() -> set[threading.Thread]:
    """Threads besides the pipeline pool's, which grows up to its bound and stays."""
    return {t for t in threading.enumerate() if not t.name.startswith("otelstream-run")}


def pool_threads() -> int:
    return threading.active_count() - len(other_threads())


def test_soak_leaves_nothing_behind() -> None:
    telemetry = make_telemetry(max_finished_runs=RUNS + 100, max_queued_runs=RUNS)
    tracer = telemetry.tracer

    def tiny(tasks: int = 3) -> None:
        for n in range(tasks):
            with tracer.start_as_current_span(f"task:t{n}"):
                time.sleep(0.001)

    app = FastAPI()
    app.include_router(
        create_router(
            hub=telemetry.hub, pipelines={"tiny": tiny}, tracer_provider=telemetry.provider
        )
    )

    @app.get("/test/tasks")
    async def tasks() -> int:
        return len(asyncio.all_tasks())

    expected = (
        ["pipeline_started"] + ["task_started", "task_completed"] * 3 + ["pipeline_completed"]
    )
    outcomes: Counter[str] = Counter()
    run_ids: list[str] = []
    lock = threading.Lock()

    def whole(client: httpx.Client, rng: random.Random) -> None:
        events = read_events(client, "POST", "/run-workflow", json={"pipeline_name": "tiny"})
        assert [e["type"] for e in events] == expected
        assert [e["seq"] for e in events] == list(range(1, 9))
        with lock:
            run_ids.append(events[0]["run_id"])
            outcomes["whole"] += 1

    def leave_early(client: httpx.Client, rng: random.Random) -> None:
        body = {"pipeline_name": "tiny"}
        with client.stream("POST", "/run-workflow", json=body) as response:
            wanted, seen = rng.randint(0, 7), b""
            for chunk in response.iter_raw():
                seen += chunk
                if seen.count(b"\n\n") >= wanted:
                    break  # the connection is dropped here, mid-stream
        with lock:
            outcomes["left early"] += 1

    def resume(client: httpx.Client, rng: random.Random) -> None:
        run_id = client.post("/runs", json={"pipeline_name": "tiny"}).json()["run_id"]
        after = rng.randint(0, 7)
        if after:  # it saw `after` events, then its connection dropped (an id the run has not
            # reached yet would count as the run's head: it positions a client, not the run)
            for message in iter_sse(client, "GET", f"/runs/{run_id}/events"):
                if message.id == str(after):
                    break
        events = read_events(
            client, "GET", f"/runs/{run_id}/events", headers={"Last-Event-ID": str(after)}
        )
        assert [e["seq"] for e in events] == list(range(after + 1, 9))
        with lock:
            run_ids.append(run_id)
            outcomes["resumed"] += 1

    behaviours: list[Callable[[httpx.Client, random.Random], None]] = [whole, leave_early, resume]
    failures: list[BaseException] = []

    def client_loop(seed: int, count: int, url: str) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(count):
                try:
                    rng.choice(behaviours)(client, rng)
                except BaseException as exc:  # reported below, with every other failure
                    failures.append(exc)
                    return

    with UvicornServer(app) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(CLIENTS):  # warm up: the worker threads exist from here on
                whole(client, random.Random(0))
            baseline_tasks = client.get("/test/tasks").json()
        time.sleep(0.2)
        baseline = (other_threads(), open_fds())
        outcomes.clear()
        started = time.monotonic()
        threads = [
            threading.Thread(target=client_loop, args=(seed, RUNS // CLIENTS, server.url))
            for seed in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
        elapsed = time.monotonic() - started
        assert not failures, failures[:3]

        deadline = time.monotonic() + 10
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while True:
                running = sum(
                    client.get(f"/runs/{run_id}").json()["status"] == "running"
                    for run_id in run_ids[-50:]
                )
                leftovers: dict[str, Any] = {
                    "subscribers": telemetry.hub.subscriber_count(),
                    "tasks": client.get("/test/tasks").json() - baseline_tasks,
                    "running": running,
                }
                if not any(leftovers.values()) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        time.sleep(0.2)
        # new since the baseline (one of an earlier test's that ends meanwhile is no leak)
        leftovers["threads"] = len(other_threads() - baseline[0])
        assert pool_threads() <= 8, "the pool stays within max_workers"
        leftovers["fds"] = max(open_fds() - baseline[1], 0)
    telemetry.provider.shutdown()
    print(
        f"\nsoak: {sum(outcomes.values())} runs in {elapsed:.1f} s with {CLIENTS} clients; "
        f"{dict(outcomes)}; leftovers {leftovers}"
    )
    assert sum(outcomes.values()) == CLIENTS * (RUNS // CLIENTS)
    assert outcomes["left early"] > 0 and outcomes["whole"] > 0 and outcomes["resumed"] > 0
    assert leftovers == {"subscribers": 0, "tasks": 0, "running": 0, "threads": 0, "fds": 0}
