"""RunSampler: a run streams completely whatever the export sampler decides."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from otelstream import EventStreamProcessor, MemoryHub, PipelineRunner, streamed_run
from otelstream.runs._mark import marked_context
from otelstream.sampling import RunSampler, sampler_from_env
from tests.conftest import events_of, shape

RUN = [
    ("pipeline_started", "etl"),
    ("task_started", "extract"),
    ("task_started", "parse"),
    ("task_completed", "parse"),
    ("task_completed", "extract"),
    ("task_started", "load"),
    ("task_completed", "load"),
    ("pipeline_completed", "etl"),
]


def provider_with(sampler: Sampler) -> tuple[TracerProvider, MemoryHub, InMemorySpanExporter]:
    hub = MemoryHub()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(EventStreamProcessor(hub))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, hub, exporter


def run_etl(provider: TracerProvider) -> tuple[str, bool]:
    """A run inside a request span; (run id, whether a span beside the run was recorded)."""
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("http request"):
        with streamed_run("etl", tracer_provider=provider) as run:
            with tracer.start_as_current_span("task:extract"):
                with tracer.start_as_current_span("task:parse"):
                    pass
            with tracer.start_as_current_span("task:load"):
                pass
        with tracer.start_as_current_span("http send") as beside:
            recorded = beside.is_recording()
    return run.run_id, recorded


@pytest.mark.parametrize(
    "sampler",
    [TraceIdRatioBased(0), ParentBased(TraceIdRatioBased(0))],
    ids=["traceidratio", "parentbased_traceidratio"],
)
def test_a_sampler_that_drops_everything_still_streams_runs(sampler: Sampler) -> None:
    provider, hub, exporter = provider_with(RunSampler(sampler))
    run_id, beside_recorded = run_etl(provider)
    assert shape(events_of(hub, run_id)) == RUN
    assert not beside_recorded  # outside the run the wrapped sampler's DROP stands
    provider.force_flush()
    assert exporter.get_finished_spans() == ()  # recorded for the stream, never exported
    provider.shutdown()


def test_with_the_default_sampler_runs_stream_and_export() -> None:
    provider, hub, exporter = provider_with(RunSampler(ParentBased(ALWAYS_ON)))
    run_id, beside_recorded = run_etl(provider)
    assert shape(events_of(hub, run_id)) == RUN
    assert beside_recorded
    exported = {span.name for span in exporter.get_finished_spans()}
    assert exported == {
        "http request",
        "pipeline:etl",
        "task:extract",
        "task:parse",
        "task:load",
        "http send",
    }
    provider.shutdown()


def test_a_caller_that_asks_not_to_sample_still_gets_its_stream() -> None:
    """A `traceparent` with the sampled flag off: parent-based sampling drops the whole trace."""
    provider, hub, exporter = provider_with(RunSampler(ParentBased(ALWAYS_ON)))
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
    remote = TraceContextTextMapPropagator().extract(carrier)
    runner = PipelineRunner({"etl": lambda: None}, tracer_provider=provider)
    handle = runner.start("etl", context=remote)
    try:
        assert handle.run_id == "0af7651916cd43dd8448eb211c80319c"
        assert shape(events_of(hub, handle.run_id)) == [
            ("pipeline_started", "etl"),
            ("pipeline_completed", "etl"),
        ]
    finally:
        runner.shutdown()
    assert exporter.get_finished_spans() == ()
    provider.shutdown()


class Recorded(Sampler):
    """Answers `decision` with attributes and a trace state, and remembers its arguments."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.calls: list[tuple[object, ...]] = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        self.calls.append((parent_context, trace_id, name, kind, attributes, links, trace_state))
        return SamplingResult(self.decision, {"sampler": "recorded"}, TraceState([("k", "v")]))

    def get_description(self) -> str:
        return "Recorded"


@pytest.mark.parametrize("decision", list(Decision), ids=lambda d: d.name)
def test_outside_a_run_the_wrapped_decision_is_returned_as_is(decision: Decision) -> None:
    wrapped = Recorded(decision)
    sampler = RunSampler(wrapped)
    links = [Link(trace.INVALID_SPAN_CONTEXT)]
    state = TraceState([("a", "b")])
    result = sampler.should_sample(Context(), 7, "span", SpanKind.SERVER, {"x": 1}, links, state)
    assert result.decision is decision
    assert wrapped.calls == [(Context(), 7, "span", SpanKind.SERVER, {"x": 1}, links, state)]


@pytest.mark.parametrize("through", ["parent_context", "current context"])
def test_inside_a_run_drop_becomes_record_only_with_the_same_attributes(through: str) -> None:
    sampler = RunSampler(Recorded(Decision.DROP))
    marked = marked_context("etl", Context())
    if through == "parent_context":
        result = sampler.should_sample(marked, 7, "task:x")
    else:
        token = attach(marked)
        try:
            result = sampler.should_sample(None, 7, "task:x")
        finally:
            detach(token)
    assert result.decision is Decision.RECORD_ONLY
    assert dict(result.attributes) == {"sampler": "recorded"}
    assert result.trace_state == TraceState([("k", "v")])


def test_inside_a_run_a_sampled_decision_is_kept() -> None:
    sampler = RunSampler(Recorded(Decision.RECORD_AND_SAMPLE))
    result = sampler.should_sample(marked_context("etl", Context()), 7, "task:x")
    assert result.decision is Decision.RECORD_AND_SAMPLE


def test_the_sampler_named_by_the_environment_is_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    monkeypatch.delenv("OTEL_TRACES_SAMPLER_ARG", raising=False)
    assert sampler_from_env().get_description() == (
        "RunSampler{ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,"
        "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
        "localParentNotSampled:AlwaysOffSampler}}"
    )
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    assert sampler_from_env().get_description() == "RunSampler{TraceIdRatioBased{0.0}}"
