"""setup_telemetry: a provider built from the standard variables, or an existing one extended."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpExporter,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import NoOpTracerProvider

from otelstream import MemoryHub, streamed_run
from otelstream.telemetry import setup_telemetry, span_exporters
from tests.conftest import ROOT, events_of, shape
from tests.otlp_receiver import grpc_receiver

ETL = [
    ("pipeline_started", "etl"),
    ("task_started", "extract"),
    ("task_completed", "extract"),
    ("pipeline_completed", "etl"),
]


@pytest.fixture(autouse=True)
def no_otel_variables(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from an environment without OTEL_* variables."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    yield


def run_etl(provider: TracerProvider, hub: MemoryHub) -> list[tuple[object, object]]:
    with streamed_run("etl", tracer_provider=provider) as run:
        with provider.get_tracer("tests").start_as_current_span("task:extract"):
            pass
    return shape(events_of(hub, run.run_id))


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, []),  # nothing set: stream only, no exporter retrying a collector that is not there
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, [GrpcExporter]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"}, [GrpcExporter]),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            [HttpExporter],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            [],  # a protocol alone exports nowhere
        ),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            [HttpExporter],  # the per-signal protocol wins
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, [GrpcExporter]),  # explicit: the spec's default endpoint
        ({"OTEL_TRACES_EXPORTER": "console"}, [ConsoleSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, [GrpcExporter, ConsoleSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317"}, []),
        ({"OTEL_TRACES_EXPORTER": ""}, []),  # empty is unset
    ],
)
def test_the_exporters_the_variables_ask_for(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: list[type]
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    exporters = span_exporters()
    try:
        assert [type(exporter) for exporter in exporters] == expected
    finally:
        for exporter in exporters:
            exporter.shutdown()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER='zipkin'"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "OTLP protocol 'http/json' is not supported",
        ),
    ],
)
def test_unsupported_values_fail_at_start_up(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        span_exporters()


def test_a_built_provider_has_the_resource_sampler_and_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "etl-service")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=ignored,deployment.environment=ci")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    hub = MemoryHub()
    telemetry = setup_telemetry(hub, set_global=False)
    provider = telemetry.provider
    assert isinstance(provider, TracerProvider)
    try:
        assert telemetry.owns_provider and telemetry.exporters == [] and telemetry.hub is hub
        assert provider.resource.attributes["service.name"] == "etl-service"
        assert provider.resource.attributes["deployment.environment"] == "ci"
        assert provider.sampler is telemetry.sampler
        assert provider.sampler.get_description() == "RunSampler{TraceIdRatioBased{0.0}}"
        assert run_etl(provider, hub) == ETL  # sampled out, and still streamed
    finally:
        telemetry.shutdown()


def test_an_existing_provider_gets_the_processor_and_keeps_everything_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")  # for a built provider only
    provider = TracerProvider(sampler=ALWAYS_ON)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    hub = MemoryHub()
    telemetry = setup_telemetry(hub, tracer_provider=provider)
    assert telemetry.provider is provider and not telemetry.owns_provider
    assert telemetry.exporters == [] and telemetry.sampler is None
    assert provider.sampler is ALWAYS_ON
    assert run_etl(provider, hub) == ETL
    assert [span.name for span in exporter.get_finished_spans()] == ["task:extract", "pipeline:etl"]
    telemetry.shutdown()  # flushes, but the provider is not otelstream's to close
    with provider.get_tracer("tests").start_as_current_span("after"):
        pass
    assert exporter.get_finished_spans()[-1].name == "after"
    # the processor it added stays on the provider (the SDK removes none), and streams no more
    with streamed_run("later", tracer_provider=provider) as later:
        with provider.get_tracer("tests").start_as_current_span("task:load"):
            pass
    assert "task:load" in [span.name for span in exporter.get_finished_spans()]  # traced
    assert asyncio.run(hub.get_run(later.run_id)) is None  # not streamed
    provider.shutdown()


def test_a_provider_that_takes_no_processors_is_refused() -> None:
    with pytest.raises(TypeError, match="NoOpTracerProvider takes no span processors"):
        setup_telemetry(MemoryHub(), tracer_provider=NoOpTracerProvider())


def test_a_global_provider_set_by_the_app_is_extended_not_replaced() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.apps.global_provider"],
        cwd=ROOT,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "console"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(done.stdout) == {
        "same_provider": True,
        "owns_provider": False,
        "exporters": [],
        "sampler": "AlwaysOnSampler",
        "events": [list(event) for event in ETL],
        "exported": ["task:extract", "pipeline:etl", "after shutdown"],
    }


def test_shutdown_sends_what_is_queued_for_export(monkeypatch: pytest.MonkeyPatch) -> None:
    with grpc_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")  # never on its own
        hub = MemoryHub()
        telemetry = setup_telemetry(hub, set_global=False)
        provider = telemetry.provider
        assert isinstance(provider, TracerProvider)
        assert [type(exporter) for exporter in telemetry.exporters] == [GrpcExporter]
        with streamed_run("etl", tracer_provider=provider) as run:
            with provider.get_tracer("tests").start_as_current_span("task:extract"):
                pass
        assert shape(events_of(hub, run.run_id)) == ETL
        assert receiver.spans() == []  # still queued
        telemetry.shutdown()
        telemetry.shutdown()  # a second call does nothing
        spans = receiver.spans()
        assert sorted(span.name for span in spans) == ["pipeline:etl", "task:extract"]
        assert {span.trace_id for span in spans} == {run.run_id}


def test_a_set_up_shut_down_on_a_provider_that_lives_on_streams_no_more_records() -> None:
    """The app's logger provider outlives `Telemetry.shutdown()` (as a global one does): the
    processor added to it stops, so a later set-up's runs do not have each record counted
    twice (seen: a test module's run counted 8 ERROR records for 2)."""
    import logging

    from opentelemetry.sdk._logs import LoggerProvider

    from otelstream.processors._log_handlers import SafeLoggingHandler

    logger_provider = LoggerProvider()
    provider = TracerProvider()
    hub = MemoryHub()
    telemetry = setup_telemetry(
        hub, tracer_provider=provider, logger_provider=logger_provider, set_global=False
    )
    log = logging.getLogger("tests.lives_on")
    log.propagate = False
    log.addHandler(SafeLoggingHandler(logger_provider=logger_provider))
    try:
        with streamed_run("before", tracer_provider=provider) as before:
            log.error("streamed")
        telemetry.shutdown()
        with streamed_run("after", tracer_provider=provider) as after:
            log.error("not streamed: the set-up was shut down")
    finally:
        log.handlers.clear()
        provider.shutdown()
    logged = [e for e in events_of(hub, before.run_id) if e["type"] == "task_log"]
    assert [e["message"] for e in logged] == ["streamed"]
    assert asyncio.run(hub.get_run(after.run_id)) is None  # neither its records nor its spans
