"""An app whose pipelines have a history (issue 31), for the page, the command and the client:
a real uvicorn in this process, so a test can seed what is usual through the hub's contract
(`record_history`) and hold a task with a gate until what it waits for has arrived.

`shards`: `prepare`, then `fetch_shard_0`, held until `release` is set; taught that the run
and the task usually take 0.3 s, the task is flagged overdue after about 1.3 s (the default
factor and margin), and the run too. `long`: `load`, held the same way; taught that the run
usually takes 20 s, it shows time left for as long as a test looks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from otelstream import EventStreamProcessor, Settings
from otelstream.fastapi import create_router
from otelstream.hubs import Hub
from otelstream.hubs.memory import MemoryHub
from otelstream.testing import UvicornServer
from tests.conftest import UrandomIdGenerator

SHARDS = (300.0, {"prepare": 5.0, "fetch_shard_0": 300.0})
"""What `shards` usually takes (ms): the run, and each task by its path."""
LONG = (20_000.0, {"load": 15_000.0})


class UsualApp:
    def __init__(self, hub: MemoryHub, url: str, release: threading.Event) -> None:
        self.hub = hub
        self.url = url
        self.release = release  # lets the held task (and so its run) end

    def learn(self, pipeline: str, usual: tuple[float, dict[str, float]]) -> None:
        """Three successful runs of `pipeline`, each as long as `usual` says."""
        learn(self.hub, pipeline, *usual)


def learn(hub: Hub, pipeline: str, run_ms: float, tasks: dict[str, float]) -> None:
    """Three successful runs of `pipeline` in `hub`'s history, each of `run_ms` with its tasks'
    durations: what is usual, known to the test."""
    for i in range(3):
        outcome: Any = {
            "run_id": f"{i + 1:032x}",
            "status": "success",
            "started_at": "2026-12-07T10:00:00Z",
            "duration_ms": run_ms,
            "tasks": tasks,
        }
        # on a thread of its own: a test's own loop may run in this one (Playwright's does)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, hub.record_history(pipeline, outcome)).result()


@contextmanager
def usual_app() -> Iterator[UsualApp]:
    hub = MemoryHub(Settings())
    provider = TracerProvider(id_generator=UrandomIdGenerator())
    provider.add_span_processor(EventStreamProcessor(hub))
    tracer = provider.get_tracer("tests")
    release = threading.Event()

    def shards() -> None:
        """prepare, then fetch_shard_0 (held until the test lets it end)."""
        with tracer.start_as_current_span("task:prepare"):
            pass
        with tracer.start_as_current_span("task:fetch_shard_0"):
            assert release.wait(30), "the test never let the task end"

    def long() -> None:
        """load (held until the test lets it end)."""
        with tracer.start_as_current_span("task:load"):
            assert release.wait(30), "the test never let the task end"

    app = FastAPI()
    app.include_router(
        create_router(hub=hub, pipelines={"shards": shards, "long": long}, tracer_provider=provider)
    )
    try:
        with UvicornServer(app) as server:
            yield UsualApp(hub, server.url, release)
            release.set()
    finally:
        release.set()
        provider.shutdown()
