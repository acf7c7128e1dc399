"""What is usual, in the stream (issue 31.2, 31.3): a run whose pipeline has a history carries
its expectations in `pipeline_started` and `task_started`, and a task (or the run) that runs
well past its usual time gets one `task_overdue` (`pipeline_overdue`) while it still runs.
On a real uvicorn, with the memory hub and a real redis-server; the history is the hub's own,
recorded through its contract (`record_history`) so each test knows what is usual; on Redis
by another worker's hub than the one that streams the run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from otelstream import EventStreamProcessor, Settings
from otelstream.fastapi import create_router
from otelstream.hubs import Hub
from otelstream.hubs.memory import MemoryHub
from otelstream.processors._overdue import threshold_ms
from otelstream.testing import UvicornServer
from tests.conftest import UrandomIdGenerator
from tests.redis_server import RedisServer
from tests.usual import learn


class Served:
    def __init__(self, hub: Hub, learner: Hub, url: str, release: threading.Event) -> None:
        self.hub = hub
        self.learner = learner  # on Redis another worker's hub: history is every worker's
        self.url = url
        self.release = release  # lets the slow task end

    def learn(self, pipeline: str, run_ms: float, tasks: dict[str, float]) -> None:
        """Three successful runs of `pipeline`, each of `run_ms` with its tasks' durations."""
        learn(self.learner, pipeline, run_ms, tasks)


@pytest.fixture(params=["memory", "redis"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    if request.param == "memory":
        hub: Hub = MemoryHub(Settings())
        learner = hub
    else:
        from otelstream.hubs.redis import RedisHub

        server: RedisServer = request.getfixturevalue("empty_redis")
        hub = RedisHub(server.url, Settings())
        learner = RedisHub(server.url, Settings())
    provider = TracerProvider(id_generator=UrandomIdGenerator())
    provider.add_span_processor(EventStreamProcessor(hub))
    tracer = provider.get_tracer("tests")
    release = threading.Event()

    def steps() -> None:
        with tracer.start_as_current_span("task:prepare"):
            with tracer.start_as_current_span("task:load"):
                pass
        with tracer.start_as_current_span("task:new"):
            pass

    def slow() -> None:
        with tracer.start_as_current_span("task:quick"):
            pass
        with tracer.start_as_current_span("task:stuck"):
            release.wait(20)

    app = FastAPI()
    app.include_router(
        create_router(hub=hub, pipelines={"steps": steps, "slow": slow}, tracer_provider=provider)
    )
    with UvicornServer(app) as server_:
        yield Served(hub, learner, server_.url, release)
        release.set()
    provider.shutdown()
    for each in {id(hub): hub, id(learner): learner}.values():
        if hasattr(each, "close"):
            each.close()


def stream(url: str, pipeline: str, until: str | None = None) -> Iterator[dict[str, Any]]:
    """The run's events as they arrive, from `POST /run-workflow`."""
    with httpx.stream(
        "POST", f"{url}/run-workflow", json={"pipeline_name": pipeline}, timeout=30
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                yield httpx.Response(200, content=line[6:]).json()


def test_a_pipeline_with_a_history_says_what_is_usual_in_its_started_events(
    served: Served,
) -> None:
    served.learn("steps", 90.0, {"prepare": 40.0, "prepare / load": 20.0})
    events = list(stream(served.url, "steps"))
    started = {e["name"]: e for e in events if e["type"] in ("pipeline_started", "task_started")}
    assert started["steps"]["expected_duration_ms"] == pytest.approx(90.0)
    assert started["steps"]["expected_p90_ms"] == pytest.approx(90.0)
    assert started["prepare"]["expected_duration_ms"] == pytest.approx(40.0)
    assert started["load"]["expected_duration_ms"] == pytest.approx(20.0)  # by its path
    assert "expected_duration_ms" not in started["new"]  # a task it never saw: nothing
    ended = [e for e in events if e["type"] in ("task_completed", "pipeline_completed")]
    assert all("expected_duration_ms" not in e for e in ended)
    tree = httpx.get(f"{served.url}/runs/{events[0]['run_id']}", timeout=10).json()["tree"]
    (new,) = [kid for kid in tree["children"] if kid["name"] == "new"]
    assert "expected_duration_ms" not in new and "overdue" not in tree
    assert not [e for e in events if e["type"].endswith("_overdue")]  # all within the usual


def test_a_pipeline_without_a_history_carries_no_expectation(served: Served) -> None:
    events = list(stream(served.url, "steps"))
    assert events[-1]["type"] == "pipeline_completed"
    assert all("expected_duration_ms" not in e for e in events)


def test_a_task_past_its_usual_time_is_flagged_once_while_it_still_runs(served: Served) -> None:
    served.learn("slow", 300.0, {"quick": 5.0, "stuck": 300.0})
    seen: list[dict[str, Any]] = []
    for event in stream(served.url, "slow"):
        seen.append(event)
        if {"task_overdue", "pipeline_overdue"} <= {e["type"] for e in seen}:
            served.release.set()  # only now may the stuck task (and so the run) end
    kinds = [e["type"] for e in seen]
    stuck = next(e for e in seen if e["type"] == "task_started" and e["name"] == "stuck")
    flagged = [e for e in seen if e["type"] == "task_overdue"]
    assert len(flagged) == 1 and kinds.count("pipeline_overdue") == 1
    (overdue,) = flagged
    assert overdue["span_id"] == stuck["span_id"] and overdue["name"] == "stuck"
    assert overdue["expected_duration_ms"] == pytest.approx(300.0)
    assert overdue["expected_p90_ms"] == pytest.approx(300.0)
    assert overdue["running_ms"] >= threshold_ms(300.0, 2.0, 1.0)
    ended = next(e for e in seen if e["type"] == "task_completed" and e["name"] == "stuck")
    assert overdue["seq"] < ended["seq"]  # while it ran: the test held it until flagged
    seqs = [e["seq"] for e in seen]
    assert seqs == list(range(1, len(seqs) + 1))  # numbered like every event
    assert kinds[-1] == "pipeline_completed"
    assert not [e for e in seen if e["type"] == "task_overdue" and e["name"] == "quick"]
    # and in the run's tree, for whoever reads it later (the client's get_run, dashboards)
    tree = httpx.get(f"{served.url}/runs/{seen[0]['run_id']}", timeout=10).json()["tree"]
    assert tree["overdue"] is True and tree["expected_duration_ms"] == pytest.approx(300.0)
    kids = {kid["name"]: kid for kid in tree["children"]}
    assert kids["stuck"]["overdue"] is True and kids["stuck"]["expected_p90_ms"] == 300.0
    assert "overdue" not in kids["quick"] and kids["quick"]["expected_duration_ms"] == 5.0


def test_the_default_threshold_flags_a_stuck_short_task_soon_and_never_one_within_its_spread() -> (
    None
):
    settings = Settings()
    usual_p90 = 300.0
    flagged_after = threshold_ms(
        usual_p90, settings.overdue_factor, settings.overdue_margin_seconds
    )
    assert usual_p90 < flagged_after <= 2000.0  # a 2.5 s task that usually takes 0.3 s
    long_p90 = 60_000.0  # a task of a minute: judged by its own spread, not by the margin
    assert threshold_ms(long_p90, settings.overdue_factor, settings.overdue_margin_seconds) == (
        long_p90 * settings.overdue_factor
    )


def test_a_task_is_never_flagged_after_its_end_even_when_its_deadline_meets_it() -> None:
    """Deadlines that fall due as the tasks end (a usual time of microseconds, no margin):
    the flag and the end race on every task, across 4 threads; wherever a task was flagged,
    the flag comes before its end in the stream."""
    from opentelemetry import context as otel_context

    from otelstream.runs._mark import marked_context
    from tests.conftest import events_of

    hub = MemoryHub(Settings())
    settings = Settings(overdue_factor=1.0, overdue_margin_seconds=0.0)
    provider = TracerProvider(id_generator=UrandomIdGenerator())
    provider.add_span_processor(EventStreamProcessor(hub, settings))
    tracer = provider.get_tracer("tests")
    names = [f"t{i}" for i in range(400)]
    expected = {"": (1e6, 1e6), **{name: (0.001, 0.002) for name in names}}

    def tasks(chunk: list[str]) -> None:
        for name in chunk:
            with tracer.start_as_current_span(f"task:{name}"):
                for _ in range(200 * (hash(name) % 5)):  # a little work, some none
                    pass

    token = otel_context.attach(marked_context("race", None, expected))
    try:
        with tracer.start_as_current_span("pipeline:race") as root:
            run_id = format(root.get_span_context().trace_id, "032x")
            context = otel_context.get_current()

            def worker(chunk: list[str]) -> None:
                attached = otel_context.attach(context)
                try:
                    tasks(chunk)
                finally:
                    otel_context.detach(attached)

            threads = [threading.Thread(target=worker, args=(names[i::4],)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        otel_context.detach(token)
    events = events_of(hub, run_id)
    ended = {e["span_id"]: e["seq"] for e in events if e["type"] == "task_completed"}
    flagged = [e for e in events if e["type"] == "task_overdue"]
    assert len(ended) == len(names)
    assert all(isinstance(e["seq"], int) for e in flagged)
    assert all(e["seq"] < ended[e["span_id"]] for e in flagged)  # type: ignore[operator]
    assert len({e["span_id"] for e in flagged}) == len(flagged)  # once each
    assert "pipeline_overdue" not in {e["type"] for e in events}
    provider.shutdown()
