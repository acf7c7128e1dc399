"""Live logs and progress: log records of a streamed run become task_log / task_progress events.

Real SDK providers throughout (a TracerProvider with the stream processor, a
LoggerProvider with EventLogProcessor and an in-memory exporter), stdlib
`logging` through OpenTelemetry's LoggingHandler. `otelstream.progress` uses the
global logger provider (settable once per process), so this module sets one
whose processors each test swaps in.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry import _logs
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from otelstream import EventLogProcessor, MemoryHub, progress, streamed_run
from otelstream.processors._progress import INTERVAL_SECONDS
from otelstream.testing import next_batch
from tests.conftest import Telemetry, events_of, make_telemetry


class _Switch(LogRecordProcessor):
    """The global provider's one processor: forwards to the current test's processors."""

    def __init__(self) -> None:
        self.targets: list[LogRecordProcessor] = []

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        for target in self.targets:
            target.on_emit(log_record)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


_SWITCH = _Switch()
_global = _logs.get_logger_provider()
if not isinstance(_global, LoggerProvider):  # the process's global provider is set only once
    _global = LoggerProvider()
    _logs.set_logger_provider(_global)
# another module of this process may have set it first: the switch goes on it either way
_global.add_log_record_processor(_SWITCH)


@dataclass
class Logs:
    telemetry: Telemetry
    hub: MemoryHub
    exported: InMemoryLogRecordExporter
    logger: logging.Logger


@pytest.fixture
def make_logs() -> Iterator[object]:
    made: list[tuple[Logs, LoggingHandler]] = []

    def make(**settings: object) -> Logs:
        telemetry = make_telemetry(**settings)
        exported = InMemoryLogRecordExporter()
        processors = [EventLogProcessor(telemetry.hub), SimpleLogRecordProcessor(exported)]
        _SWITCH.targets = processors  # type: ignore[assignment]
        handler = LoggingHandler(logger_provider=_logs.get_logger_provider())
        logger = logging.getLogger("tests.task")
        for _, old in made:
            logger.removeHandler(old)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        logger.propagate = False
        result = Logs(telemetry, telemetry.hub, exported, logger)
        made.append((result, handler))
        return result

    yield make
    for result, handler in made:
        result.logger.removeHandler(handler)
        result.telemetry.provider.shutdown()
    _SWITCH.targets = []


def of_type(events: list[dict[str, object]], *types: str) -> list[dict[str, object]]:
    return [event for event in events if event["type"] in types]


def test_a_log_line_inside_a_task_is_a_task_log_of_that_task(make_logs) -> None:  # type: ignore[no-untyped-def]
    logs = make_logs(attribute_allowlist="rows")
    tracer = logs.telemetry.tracer
    logs.logger.info("outside any run")  # costs a lookup, publishes nothing
    with streamed_run("ingest", tracer_provider=logs.telemetry.provider) as run:
        logs.logger.info("starting")  # in the root span
        with tracer.start_as_current_span("task:read") as span:
            logs.logger.warning("read %d rows", 5, extra={"rows": 5, "secret": "hunter2"})
    events = events_of(logs.hub, run.run_id)
    assert [e["type"] for e in events] == [
        "pipeline_started",
        "task_log",
        "task_started",
        "task_log",
        "task_completed",
        "pipeline_completed",
    ]
    root, first, task, second = events[0], events[1], events[2], events[3]
    assert (first["span_id"], first["message"], first["level"]) == (
        root["span_id"],
        "starting",
        "INFO",
    )
    assert second["span_id"] == task["span_id"] == format(span.get_span_context().span_id, "016x")
    assert (second["level"], second["message"], second["logger"]) == (
        "WARN",
        "read 5 rows",
        "tests.task",
    )
    assert second["attributes"] == {"rows": 5}  # the allowlist: no secret
    assert second["run_id"] == run.run_id and isinstance(second["timestamp"], str)
    assert logs.hub.dropped_events == 0  # the record outside a run was never published
    # the same records, and the one outside, reach the exporter
    bodies = [r.log_record.body for r in logs.exported.get_finished_logs()]
    assert bodies == ["outside any run", "starting", "read 5 rows"]


def test_the_level_filter_and_the_policy_apply(make_logs) -> None:  # type: ignore[no-untyped-def]
    logs = make_logs(log_level="WARNING", max_string_length=16)
    with streamed_run("levels", tracer_provider=logs.telemetry.provider) as run:
        logs.logger.debug("debug")
        logs.logger.info("info")
        logs.logger.error("a very long message that is cut")
    (log,) = of_type(events_of(logs.hub, run.run_id), "task_log")
    assert (log["level"], log["message"]) == ("ERROR", "a very long mes…")
    assert len(logs.exported.get_finished_logs()) == 3  # filtered from the stream only

    logs = make_logs(redact_errors=True)
    with streamed_run("redacted", tracer_provider=logs.telemetry.provider) as run:
        logs.logger.info("token=abc")
    (log,) = of_type(events_of(logs.hub, run.run_id), "task_log")
    assert log["message"] == "(redacted)"


def test_past_the_budget_one_logs_dropped_notice_and_the_run_goes_on(make_logs) -> None:  # type: ignore[no-untyped-def]
    logs = make_logs(max_log_events_per_run=3)
    tracer = logs.telemetry.tracer
    with streamed_run("chatty", tracer_provider=logs.telemetry.provider) as run:
        with tracer.start_as_current_span("task:loop"):
            for i in range(10):
                logs.logger.info("line %d", i)
        with tracer.start_as_current_span("task:after"):
            pass
    events = events_of(logs.hub, run.run_id)
    assert [e["message"] for e in of_type(events, "task_log")] == ["line 0", "line 1", "line 2"]
    assert [e["type"] for e in events[-4:]] == [
        "task_started",
        "task_completed",
        "logs_dropped",
        "pipeline_completed",
    ]
    assert events[-2]["dropped"] == 7 and events[-2]["span_id"] == events[0]["span_id"]

    logs = make_logs(max_log_bytes_per_run=1_100)  # each counts its message, logger + 200
    with streamed_run("bytes", tracer_provider=logs.telemetry.provider) as run:
        for _ in range(5):
            logs.logger.info("x" * 300)
    events = events_of(logs.hub, run.run_id)
    assert len(of_type(events, "task_log")) == 2
    assert of_type(events, "logs_dropped")[0]["dropped"] == 3


def test_a_runs_error_records_are_counted_on_its_end_and_in_the_runs_list(make_logs) -> None:  # type: ignore[no-untyped-def]
    logs = make_logs(max_log_events_per_run=2)
    with streamed_run("noisy", tracer_provider=logs.telemetry.provider) as run:
        with logs.telemetry.tracer.start_as_current_span("task:t"):
            logs.logger.warning("not an error")
            logs.logger.error("one")
            logs.logger.critical("two, over the budget: counted all the same")
    end = events_of(logs.hub, run.run_id)[-1]
    assert end["type"] == "pipeline_completed" and end["errors_logged"] == 2
    with streamed_run("quiet", tracer_provider=logs.telemetry.provider) as quiet:
        logs.logger.warning("only a warning")
    assert "errors_logged" not in events_of(logs.hub, quiet.run_id)[-1]
    runs = {r["run_id"]: r for r in asyncio.run(logs.hub.list_runs()).runs}
    assert runs[run.run_id]["errors_logged"] == 2 and "errors_logged" not in runs[quiet.run_id]


def test_progress_is_coalesced_and_its_latest_value_arrives(make_logs) -> None:  # type: ignore[no-untyped-def]
    logs = make_logs()
    tracer = logs.telemetry.tracer
    with streamed_run("ingest", tracer_provider=logs.telemetry.provider) as run:
        with tracer.start_as_current_span("task:files"):
            started = time.monotonic()
            for i in range(1, 20_001):
                progress(i, 20_000, f"file {i}")
            elapsed = time.monotonic() - started
    events = events_of(logs.hub, run.run_id)
    updates = of_type(events, "task_progress")
    allowed = 2 + int(elapsed / INTERVAL_SECONDS) + 1  # the first, one per interval, the last
    assert 2 <= len(updates) <= allowed, (len(updates), elapsed)
    last = updates[-1]
    assert (last["done"], last["total"], last["message"]) == (20_000, 20_000, "file 20000")
    task = of_type(events, "task_started")[0]
    assert {u["span_id"] for u in updates} == {task["span_id"]}
    assert events.index(last) < events.index(of_type(events, "task_completed")[0])
    assert updates[0]["done"] == 1
    # exported as log records too (as many as were streamed)
    exported = [r for r in logs.exported.get_finished_logs() if r.log_record.event_name]
    assert len(exported) == len(updates)


def test_a_held_back_value_arrives_while_the_task_still_runs(make_logs) -> None:  # type: ignore[no-untyped-def]
    logs = make_logs()
    tracer = logs.telemetry.tracer
    release = threading.Event()
    seen: list[dict[str, object]] = []

    def pipeline() -> str:
        with streamed_run("slow", tracer_provider=logs.telemetry.provider) as run:
            with tracer.start_as_current_span("task:wait"):
                progress(1, None)
                progress(2, None, "held back")  # inside the interval: held back
                assert release.wait(10)
        return run.run_id

    async def watch(run_id_box: list[str]) -> None:
        while not run_id_box:
            await asyncio.sleep(0.01)
        async with logs.hub.subscribe(run_id_box[0]) as subscription:
            while True:
                batch = await next_batch(subscription, timeout=5)
                assert batch, "no progress while the task ran"
                seen.extend(event.to_dict() for event in batch)
                if any(e.get("message") == "held back" for e in seen):
                    return

    box: list[str] = []
    thread = threading.Thread(target=lambda: box.append(pipeline()))
    # the run id is only known once the root starts: watch the hub for it
    thread.start()
    deadline = time.monotonic() + 10
    while not logs.hub._runs and time.monotonic() < deadline:
        time.sleep(0.005)
    run_id = next(iter(logs.hub._runs))
    asyncio.run(asyncio.wait_for(watch([run_id]), 10))
    release.set()
    thread.join(10)
    updates = of_type(seen, "task_progress")
    assert [(u["done"], u["total"]) for u in updates] == [(1, None), (2, None)]
    assert not of_type(seen, "task_completed")  # it arrived before the task ended


def test_progress_outside_a_run_is_exported_not_streamed(make_logs) -> None:  # type: ignore[no-untyped-def]
    logs = make_logs()
    with logs.telemetry.tracer.start_as_current_span("job"):
        progress(1, 2)
    assert logs.hub.dropped_events == 0
    (record,) = logs.exported.get_finished_logs()
    assert record.log_record.attributes["otelstream.progress.done"] == 1


def test_a_record_in_a_filtered_out_span_belongs_to_its_shown_ancestor(make_logs) -> None:  # type: ignore[no-untyped-def]
    logs = make_logs(span_exclude="db.*")
    tracer = logs.telemetry.tracer
    with streamed_run("filtered", tracer_provider=logs.telemetry.provider) as run:
        with tracer.start_as_current_span("task:load"):
            with tracer.start_as_current_span("db.query"):
                logs.logger.info("slow query")
    events = events_of(logs.hub, run.run_id)
    task = of_type(events, "task_started")[0]
    (log,) = of_type(events, "task_log")
    assert log["span_id"] == task["span_id"] and len(of_type(events, "task_started")) == 1


def test_setup_telemetry_routes_stdlib_logging_to_the_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from otelstream.telemetry import setup_telemetry

    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)  # Python's default
    provider = LoggerProvider()
    exported = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exported))
    hub = MemoryHub()
    telemetry = setup_telemetry(hub, set_global=False, logger_provider=provider)
    try:
        assert telemetry.logs is not None and not telemetry.logs.owns_provider
        assert logging.getLogger().level == logging.INFO  # lowered to OTELSTREAM_LOG_LEVEL
        with streamed_run("wired", tracer_provider=telemetry.provider) as run:
            logging.getLogger("tests.wired").info("through the root logger")
    finally:
        telemetry.shutdown()
    assert telemetry.logs.handler not in logging.getLogger().handlers
    (log,) = of_type(events_of(hub, run.run_id), "task_log")
    assert (log["message"], log["logger"]) == ("through the root logger", "tests.wired")
    assert [r.log_record.body for r in exported.get_finished_logs()] == ["through the root logger"]


def test_the_budget_holds_across_threads_with_one_notice(make_logs) -> None:  # type: ignore[no-untyped-def]
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    logs = make_logs(max_log_events_per_run=100)
    tracer = logs.telemetry.tracer

    def task(index: int) -> None:
        with tracer.start_as_current_span(f"task:t{index}"):
            for line in range(500):
                logs.logger.info("t%d line %d", index, line)

    with streamed_run("threads", tracer_provider=logs.telemetry.provider) as run:
        with ThreadPoolExecutor(8) as pool:
            for index in range(8):
                pool.submit(contextvars.copy_context().run, task, index)
    events = events_of(logs.hub, run.run_id)
    assert len(of_type(events, "task_log")) == 100
    (notice,) = of_type(events, "logs_dropped")
    assert notice["dropped"] == 8 * 500 - 100
    assert events[-2] is notice and len(of_type(events, "task_completed")) == 8


def test_the_new_events_match_the_published_json_schema(make_logs) -> None:  # type: ignore[no-untyped-def]
    import jsonschema

    from otelstream.events import JSON_SCHEMA

    logs = make_logs(max_log_events_per_run=1)
    with streamed_run("schema", tracer_provider=logs.telemetry.provider) as run:
        with logs.telemetry.tracer.start_as_current_span("task:t"):
            logs.logger.info("kept")
            logs.logger.info("dropped")
            logs.logger.error("dropped, still counted")
            progress(1, None, None)
    events = events_of(logs.hub, run.run_id)
    assert {e["type"] for e in events} >= {"task_log", "task_progress", "logs_dropped"}
    assert events[-1]["errors_logged"] == 1
    for event in events:
        jsonschema.validate(event, JSON_SCHEMA)
    runs = asyncio.run(logs.hub.list_runs()).runs
    jsonschema.validate({"type": "run_ended", "seq": 2, **runs[0]}, JSON_SCHEMA)


def test_the_runners_end_of_run_record_is_in_the_runs_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ "run … failed" (with its traceback) and "run … was cancelled" are logged while the root
    span is still open: streamed before `pipeline_completed`, as well as exported."""
    from otelstream.events._wire import OUTCOME_LOGGER
    from otelstream.runs import PipelineRunner
    from otelstream.runs._mark import RunCancelled
    from otelstream.telemetry import setup_telemetry

    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)
    provider = LoggerProvider()
    exported = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exported))
    hub = MemoryHub()
    telemetry = setup_telemetry(hub, set_global=False, logger_provider=provider)

    def failing() -> None:
        raise ValueError("the input was empty")

    def cancelled() -> None:
        raise RunCancelled("asked to stop")

    pipelines = {"failing": failing, "cancelled": cancelled}
    runner = PipelineRunner(pipelines, tracer_provider=telemetry.provider)
    try:
        runs = [runner.start("failing"), runner.start("cancelled")]
        deadline = time.monotonic() + 10
        while runner.running:
            assert time.monotonic() < deadline, "the runs did not end"
            time.sleep(0.01)
    finally:
        runner.shutdown()
        telemetry.shutdown()
    told = ("failed: ValueError: the input was empty", "was cancelled")
    for run, says in zip(runs, told, strict=True):
        events = events_of(hub, run.run_id)
        assert events[-1]["type"] == "pipeline_completed"
        (log,) = of_type(events, "task_log")
        assert log["logger"] == OUTCOME_LOGGER and f"run {run.run_id} {says}" in log["message"]
        assert log["span_id"] == events[0]["span_id"], "logged in the root span"
    (failed,) = [e for e in of_type(events_of(hub, runs[0].run_id), "task_log")]
    assert "Traceback (most recent call last)" in str(failed["message"])
    bodies = [str(r.log_record.body) for r in exported.get_finished_logs()]
    assert any("failed: ValueError" in body for body in bodies), bodies
