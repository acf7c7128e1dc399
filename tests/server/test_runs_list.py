"""The runs list is bounded as finished runs are: an evicted run leaves the list too."""

from __future__ import annotations

import asyncio
import time

from otelstream import MemoryHub, Settings
from otelstream.events import Event


def test_an_evicted_run_leaves_the_runs_list() -> None:
    hub = MemoryHub(Settings(max_finished_runs=1))
    ids = [f"{i:032x}" for i in range(1, 4)]
    for run_id in ids:
        hub.publish(run_id, Event("pipeline_started", "p", run_id, 1, None, time.time_ns()))
        event = Event("pipeline_completed", "p", run_id, 1, None, time.time_ns(), status="success")
        hub.publish(run_id, event)
    page = asyncio.run(hub.list_runs())
    assert [run["run_id"] for run in page.runs] == [ids[-1]]
    assert len(hub._runs_list._entries) == 1
