"""Run metrics for operators (issue 31.6), read back from real readers of the real SDK.

Runs go through the router on a real uvicorn, on the memory hub and on a real redis-server;
the metrics are read with the SDK's `InMemoryMetricReader` on a meter provider of the test's
own (`otelstream._metrics.use`), or, for `setup_telemetry`, received by a real OTLP receiver
from the example app run as users run it. A run's end is recorded off the thread that ended
it (the hub's sealing thread, the Redis writer's loop): the tests wait for it to be there.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from otelstream import Settings, _metrics
from otelstream.events import DataEvent
from otelstream.fastapi import create_router
from otelstream.hubs.memory import MemoryHub
from otelstream.hubs.redis import RedisHub
from otelstream.processors import EventStreamProcessor
from otelstream.processors._overdue import OverdueWatch
from otelstream.telemetry import OtelEnvironment
from otelstream.telemetry._meters import metric_exporter_names, metric_readers
from otelstream.testing import UvicornServer, read_events
from tests.conftest import RUN, Gate, app_process, finish, start, step
from tests.ingest.test_ingest import export, post, running, serve_ingest, span
from tests.otlp_receiver import RECEIVERS, OtlpReceiver
from tests.redis_server import RedisServer
from tests.routers import TIMEOUT, App, pipelines_for, serve_app

OVERDUE = "otelstream.tasks.overdue"
Points = dict[tuple[tuple[str, Any], ...], Any]


class Metrics:
    """The test's meter provider, bound to otelstream's instruments, read on demand."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def read(self, name: str) -> Points:
        """The metric's points now: attributes (sorted pairs) -> the SDK's data point."""
        data = self.reader.get_metrics_data()
        found: Points = {}
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name and scope.scope.name == "otelstream":
                        for point in metric.data.data_points:
                            found[tuple(sorted((point.attributes or {}).items()))] = point
        return found

    def value(self, name: str, **attributes: str) -> float:
        """A sum's value (0 if not there yet); attribute names with `_` for `.`."""
        wanted = tuple(sorted((k.replace("_", "."), v) for k, v in attributes.items()))
        point = self.read(name).get(wanted)
        return 0 if point is None else point.value

    def wait(self, what: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, "the metric never got there"
            time.sleep(0.02)


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    read = Metrics()
    _metrics.use(read.provider)
    yield read
    _metrics.use(None)
    read.provider.shutdown()


def durations(metrics: Metrics, pipeline: str) -> dict[str, HistogramDataPoint]:
    """The run duration histogram's points of `pipeline`, by status."""
    found = {}
    for attributes, point in metrics.read("otelstream.run.duration").items():
        named = dict(attributes)
        if named["otelstream.pipeline"] == pipeline:
            found[named["otelstream.run.status"]] = point
    return found


def active(metrics: Metrics, pipeline: str) -> float:
    return metrics.value("otelstream.runs.active", otelstream_pipeline=pipeline)


@pytest.fixture
def app() -> Iterator[App]:
    yield from serve_app()


@pytest.fixture
def ingest_app() -> Iterator[App]:
    yield from serve_ingest()


def test_runs_on_the_memory_hub_are_timed_counted_and_their_streams_too(
    metrics: Metrics, app: App
) -> None:
    before = active(metrics, "gated")
    run_id = app.run("gated")
    assert app.gate.reached.wait(10)
    assert active(metrics, "gated") == before + 1  # running now

    events: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=lambda: events.extend(read_events(app.client, "GET", f"/runs/{run_id}/events"))
    )
    reader.start()
    metrics.wait(lambda: metrics.value("otelstream.streams.open", otelstream_stream="run") == 1)
    app.gate.opened.set()
    reader.join(10)
    assert events[-1]["type"] == "pipeline_completed"
    metrics.wait(lambda: metrics.value("otelstream.streams.open", otelstream_stream="run") == 0)
    app.wait_until_finished(app.run("failing"))

    metrics.wait(lambda: "success" in durations(metrics, "gated"))
    metrics.wait(lambda: "error" in durations(metrics, "failing"))
    took = durations(metrics, "gated")["success"]
    assert took.count == 1
    assert took.sum == pytest.approx(events[-1]["duration_ms"] / 1000)
    metrics.wait(lambda: active(metrics, "gated") == before)  # its end: one running less


def test_a_cancelled_run_is_timed_as_cancelled(metrics: Metrics, app: App) -> None:
    run_id = app.run("gated")
    assert app.gate.reached.wait(10)
    assert app.client.delete(f"/runs/{run_id}").status_code == 202
    app.gate.opened.set()
    app.wait_until_finished(run_id)
    metrics.wait(lambda: "cancelled" in durations(metrics, "gated"))


@pytest.fixture
def redis_app(empty_redis: RedisServer) -> Iterator[App]:
    """The router of `tests/routers.py` on a Redis hub, on a real uvicorn."""
    hub = RedisHub(empty_redis.url)
    provider, gate = TracerProvider(), Gate()
    provider.add_span_processor(EventStreamProcessor(hub))
    app = FastAPI()
    app.include_router(
        create_router(hub=hub, pipelines=pipelines_for(provider, gate), tracer_provider=provider)
    )
    try:
        with UvicornServer(app) as server:
            client = App(SimpleNamespace(hub=hub), server, gate)  # type: ignore[arg-type]
            yield client
            gate.opened.set()
            client.client.close()
    finally:
        provider.shutdown()
        hub.close()


def test_runs_on_the_redis_hub_are_timed_and_counted(metrics: Metrics, redis_app: App) -> None:
    before = active(metrics, "gated")
    run_id = redis_app.run("gated")
    assert redis_app.gate.reached.wait(10)
    metrics.wait(lambda: active(metrics, "gated") == before + 1)  # once its start is stored
    redis_app.gate.opened.set()
    run = redis_app.wait_until_finished(run_id)
    redis_app.wait_until_finished(redis_app.run("failing"))
    metrics.wait(lambda: {"success"} <= set(durations(metrics, "gated")))
    metrics.wait(lambda: {"error"} <= set(durations(metrics, "failing")))
    took = durations(metrics, "gated")["success"]
    assert took.count == 1
    assert took.sum == pytest.approx(run["duration_ms"] / 1000, abs=0.01)
    metrics.wait(lambda: active(metrics, "gated") == before)


def test_ingested_spans_count_accepted_and_rejected(metrics: Metrics, ingest_app: App) -> None:
    app = ingest_app
    run_id, root = running(app)
    joined = span(run_id, 7, root, "charge card")
    stray = span("ab" * 16, 8, None, "of no run")
    assert post(app, export(joined, stray), {"content-type": "application/x-protobuf"})
    assert metrics.value("otelstream.ingest.spans", otelstream_outcome="accepted") == 1
    assert metrics.value("otelstream.ingest.spans", otelstream_outcome="rejected") == 1
    app.gate.opened.set()


def test_events_the_hub_refuses_are_counted_dropped(metrics: Metrics) -> None:
    hub = MemoryHub()
    before = metrics.value("otelstream.events.dropped", otelstream_reason="refused")
    hub.publish("cd" * 16, DataEvent("task_log", "x", "cd" * 16, 1, 1, {}))  # no such run
    assert metrics.value("otelstream.events.dropped", otelstream_reason="refused") == before + 1


def test_a_stream_that_falls_out_of_the_replay_buffer_counts_as_cut(metrics: Metrics) -> None:
    hub = MemoryHub(Settings(replay_events=4))
    before = metrics.value("otelstream.streams.cut", otelstream_reason="stream_overflow")
    start(hub)

    async def read_past_the_buffer() -> bytes:
        async with hub.subscribe(RUN) as subscription:
            assert await subscription.next_frames(timeout=5)
            for span_id in range(2, 10):  # eight events: four of them are evicted unread
                step(hub, span_id)
            read = b""
            while (frames := await subscription.next_frames(timeout=5)) is not None:
                read += frames  # the events still kept, then the cut's notice, then the end
            return read

    assert b'"stream_overflow"' in asyncio.run(read_past_the_buffer())
    finish(hub)
    cut = metrics.value("otelstream.streams.cut", otelstream_reason="stream_overflow")
    assert cut == before + 1


def test_the_overdue_watch_counts_what_it_flags(metrics: Metrics) -> None:
    watch = OverdueWatch(MemoryHub(), factor=1.0, margin_seconds=0.0)
    try:
        watch.watch("ef" * 16, 1, "nightly", (1.0, 1.0), run=True)  # due after 1 ms
        watch.watch("ef" * 16, 2, "fetch", (1.0, 1.0))
        watch.watch("ef" * 16, 3, "load", (1.0, 1.0))
        metrics.wait(lambda: len(metrics.read("otelstream.tasks.overdue")) == 2)
        metrics.wait(lambda: metrics.value(OVERDUE, otelstream_overdue_kind="task") == 2)
    finally:
        watch.close()
    pipeline = {"otelstream.overdue.kind": "pipeline", "otelstream.pipeline": "nightly"}
    assert metrics.read(OVERDUE)[tuple(sorted(pipeline.items()))].value == 1


def test_recording_never_raises_into_the_caller(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, "otelstream"):
        _metrics.run_ended("p", "success", "not a number")  # type: ignore[arg-type]
    assert "internal error in otelstream metrics" in caplog.text


def test_the_exporters_come_from_otel_metrics_exporter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def names(**env: str) -> list[str]:
        return metric_exporter_names(OtelEnvironment(**env))  # type: ignore[arg-type]

    assert names() == []  # unset, no endpoint: nothing is built (as for spans)
    assert names(exporter_otlp_endpoint="http://127.0.0.1:4317") == ["otlp"]
    assert names(metrics_exporter="console,none") == ["console"]
    readers = metric_readers(["console", "otlp"], "http/protobuf")
    assert [type(r._exporter).__name__ for r in readers] == [  # type: ignore[attr-defined]
        "ConsoleMetricExporter",
        "OTLPMetricExporter",
    ]
    for reader in readers:
        reader.shutdown()
    with pytest.raises(ValueError, match="otlp, console, prometheus or none"):
        metric_readers(["statsd"], "grpc")
    if importlib.util.find_spec("opentelemetry.exporter.prometheus") is None:
        with caplog.at_level(logging.WARNING, "otelstream"):
            assert metric_readers(["prometheus"], "grpc") == []
        assert "needs opentelemetry-exporter-prometheus" in caplog.text


@pytest.fixture(params=sorted(RECEIVERS))
def receiver(request: pytest.FixtureRequest) -> Iterator[OtlpReceiver]:
    with RECEIVERS[request.param]() as receiver:
        yield receiver


def test_setup_telemetry_exports_the_run_duration_over_otlp(receiver: OtlpReceiver) -> None:
    """The example app, with OTEL_METRICS_EXPORTER=otlp: its exit (`telemetry.shutdown()`)
    exports the duration of the run it streamed."""
    with app_process(
        "examples.fastapi-telemetry.main:app",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol,
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_SERVICE_NAME="otelstream-metrics",
    ) as url:
        with httpx.Client(timeout=TIMEOUT) as client:
            nested = {"pipeline_name": "nested", "parameters": {"seconds": 0}}
            events = read_events(client, "POST", f"{url}/run-workflow", json=nested)
    assert events[-1]["type"] == "pipeline_completed"
    points = receiver.points("otelstream.run.duration")
    assert points, receiver.points()
    last = points[-1]  # cumulative: the last export has it all
    assert (last.unit, last.scope) == ("s", "otelstream")
    assert last.attributes == {"otelstream.pipeline": "nested", "otelstream.run.status": "success"}
    assert last.count == 1
    assert last.sum == pytest.approx(events[-1]["duration_ms"] / 1000)
