"""RunMarkPropagator: a run's mark crosses a process boundary as text, and its spans follow it."""

from __future__ import annotations

import asyncio
from importlib.metadata import entry_points

import pytest
from opentelemetry import trace
from opentelemetry.baggage import get_baggage, set_baggage
from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace import TracerProvider

from otelstream import EventStreamProcessor, MemoryHub, streamed_run
from otelstream.events import Event
from otelstream.propagation import (
    HANDOFF_HEADER,
    HEADER,
    RunMarkPropagator,
    attached,
    extract,
    inject,
    propagator,
)
from otelstream.runs._mark import RUN_KEY, RunMark
from otelstream.testing import next_batch
from tests.conftest import Telemetry


def test_inside_a_run_the_carrier_has_traceparent_and_the_run(telemetry: Telemetry) -> None:
    with streamed_run("nightly load/ä b", tracer_provider=telemetry.provider) as run:
        with telemetry.tracer.start_as_current_span("task:dispatch") as span:
            carrier = inject({})
    span_id = span.get_span_context().span_id
    assert carrier.pop("traceparent").startswith(f"00-{run.run_id}-{span_id:016x}-")
    handoff = carrier.pop(HANDOFF_HEADER)  # the hand-off the run's end may wait for
    assert len(handoff) == 16 and int(handoff, 16) >= 0
    assert carrier == {HEADER: "nightly%20load%2F%C3%A4%20b"}


def test_outside_a_run_only_the_traceparent_travels(telemetry: Telemetry) -> None:
    with telemetry.tracer.start_as_current_span("not a run"):
        carrier = inject({})
    assert set(carrier) == {"traceparent"}
    assert inject({}) == {}, "no span, no run: nothing"


def test_a_mark_whose_run_has_not_started_is_not_sent() -> None:
    context = Context({RUN_KEY: RunMark("p", 0)})  # run_id is set by the root span only
    carrier: dict[str, str] = {}
    RunMarkPropagator().inject(carrier, context)
    assert carrier == {}


def test_extract_marks_every_worker_span_as_a_task_of_the_run() -> None:
    run_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    carrier = {"traceparent": f"00-{run_id}-{parent}-01", HEADER: "nightly%20load"}
    context = extract(carrier)
    mark = context.get(RUN_KEY)
    assert isinstance(mark, RunMark)
    assert (mark.name, mark.run_id, mark.origin_span_id) == ("nightly load", run_id, -1)
    assert trace.get_current_span(context).get_span_context().span_id == int(parent, 16)


def test_extract_without_the_header_or_the_traceparent_makes_no_run() -> None:
    run_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    assert extract({"traceparent": f"00-{run_id}-{parent}-01"}).get(RUN_KEY) is None
    assert extract({HEADER: "p"}).get(RUN_KEY) is None
    assert RunMarkPropagator().extract({HEADER: "p"}).get(RUN_KEY) is None


def test_spans_under_an_extracted_context_stream_with_their_remote_parent(
    telemetry: Telemetry,
) -> None:
    """The "worker" has a provider and a hub of its own; a MemoryHub stands for Redis here."""
    worker_hub = MemoryHub()
    worker = TracerProvider()
    worker.add_span_processor(EventStreamProcessor(worker_hub))
    tracer = worker.get_tracer("worker")
    with streamed_run("handoff", tracer_provider=telemetry.provider) as run:
        with telemetry.tracer.start_as_current_span("task:dispatch") as dispatch:
            carrier = inject({})
    # the run's start reaches the worker's hub first, as it reaches Redis first
    root = run.span.get_span_context().span_id
    worker_hub.publish(run.run_id, Event("pipeline_started", "handoff", run.run_id, root, None, 0))
    with attached(carrier), tracer.start_as_current_span("task:crunch") as crunch:
        with tracer.start_as_current_span("task:part"):
            pass
    worker.shutdown()
    seen = [(e.type, e.name, e.parent_span_id) for e in _events(worker_hub, run.run_id)][1:]
    dispatch_id = dispatch.get_span_context().span_id
    crunch_id = crunch.get_span_context().span_id
    assert seen == [
        ("task_started", "crunch", dispatch_id),
        ("task_started", "part", crunch_id),
        ("task_completed", "part", crunch_id),
        ("task_completed", "crunch", dispatch_id),
    ]


def test_attached_restores_the_context_it_found(telemetry: Telemetry) -> None:
    run_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with attached({"traceparent": f"00-{run_id}-{parent}-01", HEADER: "p"}) as context:
        assert get_current() is context and isinstance(context.get(RUN_KEY), RunMark)
    assert get_current().get(RUN_KEY) is None


def _events(hub: MemoryHub, run_id: str) -> list[Event]:
    async def read() -> list[Event]:
        async with hub.subscribe(run_id) as subscription:
            return await next_batch(subscription, timeout=5) or []

    return asyncio.run(read())


def test_the_composite_keeps_baggage_too(telemetry: Telemetry) -> None:
    with streamed_run("p", tracer_provider=telemetry.provider):
        context = set_baggage("tenant", "acme")
        carrier: dict[str, str] = {}
        propagator().inject(carrier, context)
    assert set(carrier) == {"traceparent", "baggage", HEADER}
    extracted = propagator().extract(carrier)
    assert get_baggage("tenant", extracted) == "acme"
    assert isinstance(extracted.get(RUN_KEY), RunMark)


def test_the_entry_point_names_the_propagator() -> None:
    found = entry_points(group="opentelemetry_propagator", name="otelstream_run")
    if not found:
        pytest.skip("pyproject.toml does not declare the otelstream_run entry point yet")
    assert next(iter(found)).load() is RunMarkPropagator
