"""What only MemoryHub does: its bounds on runs. The behaviour every hub shares is in
test_hub_conformance.py, run against each of them."""

from __future__ import annotations

import asyncio

import pytest

from otelstream import MemoryHub, Settings, UnknownRun
from tests.conftest import RUN, finish, start, task


def test_unknown_runs_and_events_before_the_start_are_refused() -> None:
    hub = MemoryHub()
    task(hub, 2)  # no pipeline_started: nothing to attach it to
    assert hub.dropped_events == 1
    with pytest.raises(UnknownRun):
        hub.subscribe(RUN)
    assert asyncio.run(hub.get_run(RUN)) is None


def test_finished_runs_are_evicted_by_count() -> None:
    hub = MemoryHub(Settings(max_finished_runs=2))
    runs = [f"{n:032x}" for n in range(1, 4)]
    for run_id in runs:
        start(hub, run_id)
        finish(hub, run_id)
    assert asyncio.run(hub.get_run(runs[0])) is None
    assert [asyncio.run(hub.get_run(r)) is not None for r in runs[1:]] == [True, True]


def test_active_runs_are_bounded() -> None:
    hub = MemoryHub(Settings(max_active_runs=1))
    start(hub, "a" * 32)
    start(hub, "b" * 32)
    assert asyncio.run(hub.get_run("b" * 32)) is None
    finish(hub, "a" * 32)
    start(hub, "c" * 32)
    assert asyncio.run(hub.get_run("c" * 32)) is not None
