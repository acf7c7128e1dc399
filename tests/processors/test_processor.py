"""EventStreamProcessor with a real SDK tracer provider: which spans become which events."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
import pytest
from opentelemetry.sdk.trace import TracerProvider
from starlette.concurrency import run_in_threadpool

from otelstream import EventStreamProcessor, MemoryHub, Settings, streamed_run
from otelstream.events import Event
from tests.conftest import Telemetry, events_of, make_telemetry, shape


def test_a_run_is_its_root_and_tasks_in_order(telemetry: Telemetry) -> None:
    tracer = telemetry.tracer
    with streamed_run("etl", tracer_provider=telemetry.provider) as run:
        with tracer.start_as_current_span("task:extract"):
            pass
        with tracer.start_as_current_span("task:load"):
            pass
    events = events_of(telemetry.hub, run.run_id)
    assert shape(events) == [
        ("pipeline_started", "etl"),
        ("task_started", "extract"),
        ("task_completed", "extract"),
        ("task_started", "load"),
        ("task_completed", "load"),
        ("pipeline_completed", "etl"),
    ]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert {e["run_id"] for e in events} == {run.run_id}
    assert len(run.run_id) == 32 and run.run_id == format(
        run.span.get_span_context().trace_id, "032x"
    )
    root = events[0]["span_id"]
    assert events[0]["parent_span_id"] is None and events[-1]["parent_span_id"] is None
    assert all(e["parent_span_id"] == root for e in events[1:-1])
    assert events[-1]["status"] == "success"
    assert events[2]["duration_ms"] >= 0


def test_exported_spans_and_events_share_ids(telemetry: Telemetry) -> None:
    with (
        streamed_run("etl", tracer_provider=telemetry.provider) as run,
        telemetry.tracer.start_as_current_span("task:extract"),
    ):
        pass
    spans = {s.name: s for s in telemetry.exporter.get_finished_spans()}
    events = events_of(telemetry.hub, run.run_id)
    assert events[1]["span_id"] == format(spans["task:extract"].context.span_id, "016x")
    assert events[0]["span_id"] == format(spans["pipeline:etl"].context.span_id, "016x")


def test_spans_outside_a_streamed_run_are_ignored(telemetry: Telemetry) -> None:
    tracer = telemetry.tracer
    with tracer.start_as_current_span("http request"):
        with tracer.start_as_current_span("task:not streamed"):
            pass
        with streamed_run("etl", tracer_provider=telemetry.provider) as run:
            with tracer.start_as_current_span("task:inside"):
                pass
        # same trace, outside the run's subtree: like a framework's per-chunk span
        with tracer.start_as_current_span("http send"):
            pass
    assert shape(events_of(telemetry.hub, run.run_id)) == [
        ("pipeline_started", "etl"),
        ("task_started", "inside"),
        ("task_completed", "inside"),
        ("pipeline_completed", "etl"),
    ]
    assert telemetry.hub.dropped_events == 0
    assert len(telemetry.exporter.get_finished_spans()) == 5


def test_a_failing_task_and_pipeline(telemetry: Telemetry) -> None:
    class PipelineError(Exception):
        pass

    with (
        pytest.raises(PipelineError),
        streamed_run("etl", tracer_provider=telemetry.provider) as run,
    ):
        with telemetry.tracer.start_as_current_span("task:ok"):
            pass
        with telemetry.tracer.start_as_current_span("task:bad"):
            raise PipelineError("row 7 is malformed")
    events = events_of(telemetry.hub, run.run_id)
    assert shape(events)[-2:] == [("task_error", "bad"), ("pipeline_completed", "etl")]
    assert events[-2]["error"] == "row 7 is malformed"
    assert events[-2]["error_type"] == "PipelineError"
    assert events[-1]["status"] == "error"
    assert events[-1]["error"] == "row 7 is malformed"
    assert "error" not in events[2]


def test_nested_spans_keep_their_parents(telemetry: Telemetry) -> None:
    tracer = telemetry.tracer
    with streamed_run("n", tracer_provider=telemetry.provider) as run:
        with tracer.start_as_current_span("task:outer") as outer:
            with tracer.start_as_current_span("task:inner"):
                pass
    events = events_of(telemetry.hub, run.run_id)
    inner = [e for e in events if e["name"] == "inner"]
    assert {e["parent_span_id"] for e in inner} == {
        format(outer.get_span_context().span_id, "016x")
    }


def test_a_streamed_run_inside_a_streamed_run_is_one_run(telemetry: Telemetry) -> None:
    with streamed_run("outer", tracer_provider=telemetry.provider) as outer:
        with streamed_run("inner", tracer_provider=telemetry.provider) as inner:
            pass
    assert inner.run_id == outer.run_id
    assert shape(events_of(telemetry.hub, outer.run_id)) == [
        ("pipeline_started", "outer"),
        ("task_started", "inner"),
        ("task_completed", "inner"),
        ("pipeline_completed", "outer"),
    ]


def test_log_records_are_not_tasks_but_task_logs(telemetry: Telemetry) -> None:
    logfire = telemetry.provider.get_tracer("logfire")  # what logfire's spans come from
    with streamed_run("etl", tracer_provider=telemetry.provider) as run:
        with logfire.start_as_current_span(
            "task:{name}", attributes={"logfire.msg": "task:compute", "name": "compute"}
        ):
            logfire.start_span(
                "row {n} skipped", attributes={"logfire.span_type": "log", "logfire.msg": "r"}
            ).end()
    events = events_of(telemetry.hub, run.run_id)
    assert shape(events)[1:4] == [
        ("task_started", "compute"),
        ("task_log", "logfire"),
        ("task_completed", "compute"),
    ]
    assert (events[2]["message"], events[2]["span_id"]) == ("r", events[1]["span_id"])


def test_attributes_reach_events_only_through_the_allowlist() -> None:
    telemetry = make_telemetry(attribute_allowlist=frozenset({"rows"}))
    with streamed_run("etl", tracer_provider=telemetry.provider) as run:
        with telemetry.tracer.start_as_current_span(
            "task:load", attributes={"rows": 3, "password": "hunter2"}
        ):
            pass
    events = events_of(telemetry.hub, run.run_id)
    assert events[1]["attributes"] == {"rows": 3}
    assert events[2]["attributes"] == {"rows": 3}
    assert "password" not in repr(events)


def _task(tracer_provider: TracerProvider, name: str) -> str:
    with tracer_provider.get_tracer("t").start_as_current_span(f"task:{name}"):
        return threading.current_thread().name


def test_tasks_in_threads_that_carry_the_context(telemetry: Telemetry) -> None:
    provider = telemetry.provider

    async def async_tasks() -> None:
        with provider.get_tracer("t").start_as_current_span("task:async"):
            await asyncio.sleep(0)
            await asyncio.gather(
                *(asyncio.to_thread(_task, provider, f"to_thread_{i}") for i in (1, 2))
            )
        await run_in_threadpool(_task, provider, "starlette")
        await anyio.to_thread.run_sync(_task, provider, "anyio")

    with streamed_run("threads", tracer_provider=provider) as run:
        with ThreadPoolExecutor(4) as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, _task, provider, f"pool_{i}")
                for i in range(4)
            ]
            assert all(f.result().startswith("ThreadPoolExecutor") for f in futures)
        asyncio.run(async_tasks())
    events = events_of(telemetry.hub, run.run_id)
    names = {e["name"] for e in events if e["type"] == "task_completed"}
    assert names == {
        "pool_0",
        "pool_1",
        "pool_2",
        "pool_3",
        "async",
        "to_thread_1",
        "to_thread_2",
        "starlette",
        "anyio",
    }
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    by_name = {e["name"]: e for e in events if e["type"] == "task_started"}
    assert by_name["to_thread_1"]["parent_span_id"] == by_name["async"]["span_id"]


def test_a_thread_without_the_context_is_not_part_of_the_run(telemetry: Telemetry) -> None:
    with streamed_run("etl", tracer_provider=telemetry.provider) as run:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(_task, telemetry.provider, "lost").result()
    assert shape(events_of(telemetry.hub, run.run_id)) == [
        ("pipeline_started", "etl"),
        ("pipeline_completed", "etl"),
    ]


def test_parallel_tasks_get_gapless_sequence_numbers(telemetry: Telemetry) -> None:
    with streamed_run("wide", tracer_provider=telemetry.provider) as run:
        with ThreadPoolExecutor(8) as pool:
            for future in [
                pool.submit(contextvars.copy_context().run, _task, telemetry.provider, f"t{i}")
                for i in range(400)
            ]:
                future.result()
    events = events_of(telemetry.hub, run.run_id)
    assert [e["seq"] for e in events] == list(range(1, 803))
    assert events[-1]["type"] == "pipeline_completed"


class BrokenHub(MemoryHub):
    def publish(self, run_id: str, event: Event) -> None:
        raise ConnectionError("hub is down")


@pytest.mark.internal_errors
def test_a_failing_hub_never_breaks_the_task(caplog: pytest.LogCaptureFixture) -> None:
    provider = TracerProvider()
    provider.add_span_processor(EventStreamProcessor(BrokenHub(Settings())))
    with caplog.at_level(logging.ERROR, logger="otelstream"):
        with streamed_run("etl", tracer_provider=provider):
            with provider.get_tracer("t").start_as_current_span("task:compute"):
                result = 42
        with pytest.raises(KeyError, match="mine"):  # the task's own error, not the hub's
            with streamed_run("etl", tracer_provider=provider):
                raise KeyError("mine")
    assert result == 42
    logged = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert logged and "hub is down" in logged[0].exc_text  # type: ignore[operator]
    assert len(logged) == 1, "logging is rate limited"


def test_open_spans_are_bounded() -> None:
    telemetry = make_telemetry(max_open_spans=2)
    tracer = telemetry.tracer
    with streamed_run("etl", tracer_provider=telemetry.provider) as run:
        with tracer.start_as_current_span("task:a"):
            with tracer.start_as_current_span("task:b"):
                pass
    assert shape(events_of(telemetry.hub, run.run_id)) == [
        ("pipeline_started", "etl"),
        ("task_started", "a"),
        ("task_completed", "a"),
        ("pipeline_completed", "etl"),
    ]


def test_errors_can_be_redacted_to_their_type_and_long_text_is_cut() -> None:
    telemetry = make_telemetry(redact_errors=True, max_string_length=16)
    with pytest.raises(PermissionError):
        with streamed_run("etl", tracer_provider=telemetry.provider) as run:
            with telemetry.tracer.start_as_current_span("task:" + "x" * 40):
                raise PermissionError("token sk-live-123 was refused")
    events = events_of(telemetry.hub, run.run_id)
    assert events[2]["name"] == "x" * 15 + "…"
    assert (events[2]["error"], events[2]["error_type"]) == ("PermissionError", "PermissionError")
    assert (events[3]["error"], events[3]["error_type"]) == ("PermissionError", "PermissionError")
    assert "sk-live" not in repr(events)


def test_a_second_run_in_one_trace_needs_a_new_trace(telemetry: Telemetry) -> None:
    with telemetry.tracer.start_as_current_span("POST /work") as request:
        with streamed_run("first", tracer_provider=telemetry.provider) as first:
            pass
        with streamed_run("second", tracer_provider=telemetry.provider) as same_trace:
            pass
        with streamed_run("third", tracer_provider=telemetry.provider, new_trace=True) as third:
            with telemetry.tracer.start_as_current_span("task:t"):
                pass
    assert same_trace.run_id == first.run_id
    assert telemetry.hub.dropped_events == 2, "the second run's events had nowhere to go"
    assert third.run_id != first.run_id
    assert shape(events_of(telemetry.hub, third.run_id)) == [
        ("pipeline_started", "third"),
        ("task_started", "t"),
        ("task_completed", "t"),
        ("pipeline_completed", "third"),
    ]
    root = next(s for s in telemetry.exporter.get_finished_spans() if s.name == "pipeline:third")
    assert root.parent is None
    assert [link.context.span_id for link in root.links] == [request.get_span_context().span_id]


class _Recording:
    """A hub that keeps what the processor published, as published (nothing read yet)."""

    settings = Settings()

    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, run_id: str, event: Event) -> None:
        event.seq = len(self.events) + 1
        self.events.append(event)


def test_the_span_thread_records_and_the_reader_projects() -> None:
    hub = _Recording()
    provider = TracerProvider()
    provider.add_span_processor(EventStreamProcessor(hub))  # type: ignore[arg-type]
    tracer = provider.get_tracer("tests")
    with streamed_run("etl", tracer_provider=provider):
        with tracer.start_as_current_span("task:load") as span:
            span.record_exception(ValueError("bad row"))  # recorded, never raised
    # on the span thread: the kind and the run only, the span kept for the reader
    assert [e.type for e in hub.events] == [
        "pipeline_started",
        "task_started",
        "task_error",
        "pipeline_completed",
    ]
    assert all(getattr(e, "_span", None) is not None for e in hub.events)
    failed = hub.events[2]
    assert failed.to_dict()["error"] == "bad row" and failed.error_type == "ValueError"
    assert getattr(failed, "_span", None) is None  # projected once, the span let go
    assert failed.name == hub.events[1].name == "load"
    assert b'"type":"task_started","name":"load"' in hub.events[1].sse
    with pytest.raises(AttributeError):
        _ = failed.no_such_field  # type: ignore[attr-defined]


def test_a_reader_that_finds_the_span_let_go_reads_what_another_projected() -> None:
    """Two threads may read one event at once; the one that finds the span already let go
    (the other finished projecting) must read the fields, not fail."""
    hub = _Recording()
    provider = TracerProvider()
    provider.add_span_processor(EventStreamProcessor(hub))  # type: ignore[arg-type]
    with (
        streamed_run("etl", tracer_provider=provider),
        provider.get_tracer("tests").start_as_current_span("task:load"),
    ):
        pass
    ended = hub.events[2]
    assert ended.status is None  # projected by this reader, the span let go
    # what a second reader that missed the slot just before the first filled it runs:
    assert ended.__getattr__("error") is None
    assert ended.__getattr__("name") == "load"
    assert ended.sse.startswith(b"id: 3\n")
