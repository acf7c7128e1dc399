"""No client moves a position others share: a `Last-Event-ID` beyond a run's last seq positions
only its own stream, at the run's head, and every other viewer of the run gets every event.

Real uvicorn processes: the example on a memory hub, and two workers on one real redis-server
(the run started on one, watched on the other, whose shared reader a poisoned client reached
first before the fix).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from otelstream.testing import iter_sse, read_events
from tests.conftest import EXAMPLE, app_process, app_subprocesses
from tests.redis_server import RedisServer

POISON = "999999999999999999"
SLOW = {"pipeline_name": "example", "parameters": {"seconds": 1.5}}
APP = "tests.apps.redis_example:app"


@pytest.fixture(params=["memory", "redis"])
def starter_and_watcher(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(where the run starts, where it is watched): one process, or two workers on Redis."""
    with ExitStack() as stack:
        if request.param == "memory":
            url = stack.enter_context(app_process(EXAMPLE))
            yield url, url
            return
        server: RedisServer = request.getfixturevalue("redis")
        server.command("FLUSHALL")
        env = {"OTELSTREAM_HUB": server.url}
        (starter, _), (watcher, _) = stack.enter_context(app_subprocesses(APP, 2, **env))
        yield starter, watcher


@pytest.mark.timeout(180)  # two workers to start on a machine that may be busy
def test_one_poisoned_viewer_beside_ten_honest_ones(starter_and_watcher: tuple[str, str]) -> None:
    starter, watcher = starter_and_watcher
    with httpx.Client(base_url=starter, timeout=20) as client:
        run_id = client.post("/runs", json=SLOW).json()["run_id"]
    url = f"{watcher}/runs/{run_id}/events"
    poisoned: list[dict[str, Any]] = []

    def poisoned_viewer() -> None:
        with httpx.Client(timeout=20) as client:
            for message in iter_sse(client, "GET", url, headers={"Last-Event-ID": POISON}):
                poisoned.append(json.loads(message.data))

    def honest_viewer(_: int) -> list[dict[str, Any]]:
        with httpx.Client(timeout=20) as client:
            return read_events(client, "GET", url)

    first = threading.Thread(target=poisoned_viewer)
    first.start()
    time.sleep(0.3)  # it reaches the watcher first: the run's shared reader there is new
    with ThreadPoolExecutor(10) as pool:
        honest = list(pool.map(honest_viewer, range(10)))
    first.join(20)

    for events in honest:
        assert [e["seq"] for e in events] == list(range(1, 7))
        assert events[-1]["type"] == "pipeline_completed"
    # at the head when it came: it gets what follows, up to the run's end
    assert poisoned and poisoned[-1]["type"] == "pipeline_completed"
    assert [e["seq"] for e in poisoned] == list(range(poisoned[0]["seq"], 7))
    assert poisoned[0]["seq"] > 1
    with httpx.Client(timeout=20) as client:  # over, with a position beyond it: nothing more
        assert client.get(url, headers={"Last-Event-ID": POISON}).status_code == 204
