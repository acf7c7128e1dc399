"""PipelineRunner: how registered pipelines are called, bounded and ended."""

from __future__ import annotations

import asyncio
import threading
import time
from functools import partial
from typing import Any

import pytest

import otelstream
from otelstream import PipelineRunner, Settings
from otelstream.runs import RunsFull, UnknownPipeline
from tests.conftest import Telemetry, events_of, make_telemetry, shape


def wait_for_end(telemetry: Telemetry, run_id: str) -> list[dict[str, object]]:
    return events_of(telemetry.hub, run_id)


def test_builders_get_the_parameters_and_their_execute_runs(telemetry: Telemetry) -> None:
    calls: list[Any] = []
    tracer = telemetry.tracer

    class Built:
        def __init__(self, rows: int) -> None:
            self.rows = rows

        def execute(self) -> None:
            with tracer.start_as_current_span("task:load"):
                calls.append(("execute", self.rows, threading.current_thread().name))

    def build(rows: int = 1) -> Built:
        calls.append(("build", rows))
        return Built(rows)

    runner = PipelineRunner({"etl": partial(build)}, tracer_provider=telemetry.provider)
    handle = runner.start("etl", {"rows": 7})
    events = wait_for_end(telemetry, handle.run_id)
    runner.shutdown()
    assert calls[0] == ("build", 7)
    assert calls[1][:2] == ("execute", 7) and calls[1][2].startswith("otelstream-run")
    assert shape(events) == [
        ("pipeline_started", "etl"),
        ("task_started", "load"),
        ("task_completed", "load"),
        ("pipeline_completed", "etl"),
    ]


def test_async_pipelines_run_on_a_loop_of_their_own(telemetry: Telemetry) -> None:
    tracer = telemetry.tracer

    async def crawl(pages: int) -> None:
        async def page(n: int) -> None:
            with tracer.start_as_current_span(f"task:page_{n}"):
                await asyncio.sleep(0.01)

        await asyncio.gather(*(page(n) for n in range(pages)))

    runner = PipelineRunner({"crawl": crawl}, tracer_provider=telemetry.provider)
    events = wait_for_end(telemetry, runner.start("crawl", {"pages": 3}).run_id)
    runner.shutdown()
    assert {name for kind, name in shape(events) if kind == "task_completed"} == {
        "page_0",
        "page_1",
        "page_2",
    }
    assert events[-1]["status"] == "success"


def test_a_builder_that_fails_before_any_span_still_ends_the_run(telemetry: Telemetry) -> None:
    def build(**parameters: object) -> None:
        raise TypeError(f"unexpected parameters {sorted(parameters)}")

    runner = PipelineRunner({"bad": build}, tracer_provider=telemetry.provider)
    events = wait_for_end(telemetry, runner.start("bad", {"x": 1}).run_id)
    runner.shutdown()
    assert shape(events) == [("pipeline_started", "bad"), ("pipeline_completed", "bad")]
    assert events[-1]["status"] == "error"
    assert (events[-1]["error"], events[-1]["error_type"]) == (
        "unexpected parameters ['x']",
        "TypeError",
    )


def test_unknown_pipelines_and_a_full_queue_are_refused() -> None:
    telemetry = make_telemetry()
    gate = threading.Event()
    runner = PipelineRunner(
        {"wait": lambda: gate.wait(10)},
        settings=Settings(max_workers=1, max_queued_runs=1),
        tracer_provider=telemetry.provider,
    )
    with pytest.raises(UnknownPipeline):
        runner.start("nope")
    running = runner.start("wait")
    queued = runner.start("wait")
    with pytest.raises(RunsFull):
        runner.start("wait")
    gate.set()
    for handle in (running, queued):
        assert events_of(telemetry.hub, handle.run_id)[-1]["status"] == "success"
    runner.start("wait")  # room again
    runner.shutdown()


def test_shutdown_ends_runs_that_never_got_a_worker() -> None:
    telemetry = make_telemetry()
    gate = threading.Event()
    runner = PipelineRunner(
        {"wait": lambda: gate.wait(10)},
        settings=Settings(max_workers=1, max_queued_runs=2),
        tracer_provider=telemetry.provider,
    )
    running = runner.start("wait")
    queued = runner.start("wait")
    runner.shutdown()
    gate.set()
    assert events_of(telemetry.hub, running.run_id)[-1]["status"] == "success"
    last = events_of(telemetry.hub, queued.run_id)[-1]
    assert (last["type"], last["status"]) == ("pipeline_completed", "error")
    assert last["error"] == "the server shut down before the run began"
    with pytest.raises(RunsFull):
        runner.start("wait")
    runner.open()
    assert events_of(telemetry.hub, runner.start("wait").run_id)[-1]["status"] == "success"
    runner.shutdown()


@pytest.mark.parametrize("check", ["check_cancelled", "is_cancelled"])
def test_long_task_code_that_opens_no_span_stops_when_asked(
    telemetry: Telemetry, check: str
) -> None:
    """`otelstream.check_cancelled()` raises, `is_cancelled()` answers: no span is needed."""
    tracer = telemetry.tracer
    started, rounds = threading.Event(), []

    def spin() -> None:
        with tracer.start_as_current_span("task:spin"):
            while True:
                started.set()
                rounds.append(1)
                if check == "check_cancelled":
                    otelstream.check_cancelled()
                elif otelstream.is_cancelled():
                    raise otelstream.RunCancelled("spin")
                time.sleep(0.005)
                assert len(rounds) < 2000, "the cancel request never reached the loop"

    runner = PipelineRunner({"spin": spin}, tracer_provider=telemetry.provider)
    handle = runner.start("spin")
    assert started.wait(10)
    assert runner.cancel(handle.run_id)
    events = wait_for_end(telemetry, handle.run_id)
    runner.shutdown()
    assert shape(events)[-2:] == [("task_error", "spin"), ("pipeline_completed", "spin")]
    assert (events[-1]["status"], events[-1]["error_type"]) == ("cancelled", "RunCancelled")


def test_outside_a_cancelled_run_the_checks_do_nothing(telemetry: Telemetry) -> None:
    assert otelstream.is_cancelled() is False
    otelstream.check_cancelled()
    with otelstream.streamed_run("mine", tracer_provider=telemetry.provider):
        assert otelstream.is_cancelled() is False
        otelstream.check_cancelled()


@pytest.mark.parametrize("redact", [False, True], ids=["cut", "redacted"])
def test_a_failed_runs_log_line_is_cut_escaped_and_redacted(
    caplog: pytest.LogCaptureFixture, redact: bool
) -> None:
    """A megabyte of message, and a newline that would forge a log line of its own."""
    telemetry = make_telemetry(max_string_length=100, redact_errors=redact)
    secret = "password=hunter2\nCRITICAL forged line" + "x" * 1_000_000

    def leaky() -> None:
        raise ValueError(secret)

    runner = PipelineRunner(
        {"leaky": leaky}, settings=telemetry.hub.settings, tracer_provider=telemetry.provider
    )
    with caplog.at_level("WARNING", logger="otelstream.runs"):
        run_id = runner.start("leaky").run_id
        assert wait_for_end(telemetry, run_id)[-1]["status"] == "error"
        deadline = time.monotonic() + 10  # the worker logs just after the root span ends
        while not (found := [r for r in caplog.records if run_id in r.getMessage()]):
            assert time.monotonic() < deadline, "no log line"
            time.sleep(0.01)
        runner.shutdown()
    [record] = found
    text = record.getMessage()
    assert record.exc_info is None and len(text) < 2_000
    first, *frames = text.splitlines()
    if redact:
        assert (
            first == f"run {run_id} failed: ValueError (message redacted: OTELSTREAM_REDACT_ERRORS)"
        )
        assert "hunter2" not in text
    else:
        assert first.startswith(f"run {run_id} failed: ValueError: password=hunter2\\nCRITICAL")
        assert first.endswith("x…") and "CRITICAL" not in "".join(frames)
    assert frames[0] == "Traceback (most recent call last):"
    assert any("raise ValueError(secret)" in line for line in frames)
    telemetry.provider.shutdown()


def test_a_run_whose_root_span_ended_is_not_cancelled_though_its_thread_goes_on() -> None:
    """`DELETE` after the stream's `pipeline_completed` is a 409, not a 202: the runner says a
    run is no longer its to cancel once its root span ended, even while its thread is still
    held right after that end (here by a span processor), before it lets the run go."""
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

    telemetry = make_telemetry()
    ended, checked = threading.Event(), threading.Event()

    class HoldTheEnd(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            if span.name.startswith("pipeline:"):
                ended.set()
                checked.wait(10)

    telemetry.provider.add_span_processor(HoldTheEnd())
    runner = PipelineRunner({"noop": lambda: None}, tracer_provider=telemetry.provider)
    try:
        handle = runner.start("noop")
        assert ended.wait(10)
        assert runner.running == 1, "held between the root span's end and the run's release"
        assert runner.cancel(handle.run_id) is False
    finally:
        checked.set()
        runner.shutdown()
        telemetry.provider.shutdown()
    assert shape(wait_for_end(telemetry, handle.run_id))[-1] == ("pipeline_completed", "noop")
