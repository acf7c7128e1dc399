"""Carrying a run into another process: the W3C traceparent plus an `otelstream-run` header.

    carrier = propagation.inject({})                # in the task that hands work over
    ...                                             # send the carrier with the job
    with propagation.attached(carrier):             # in the worker: every span opened
        with tracer.start_as_current_span("task:work"):    # inside joins the run
            ...

Attach the extracted context (as Celery's instrumentation does): passing it as
`start_as_current_span(..., context=...)` only sets the parent of that one span,
and the spans below it would not carry the run.

The worker needs its own `EventStreamProcessor` publishing to the same Redis
(`RedisHub`). Or set the propagators globally: `OTEL_PROPAGATORS=tracecontext,
baggage,otelstream_run`, or `set_global_textmap(propagator())`, and let Celery's
or your HTTP client's instrumentation carry the headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, unquote

from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context, attach, detach, get_current, set_value
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otelstream.hubs import _handoffs
from otelstream.runs._mark import RUN_KEY, RunMark

HEADER = "otelstream-run"
"""Carries the run's name, URL-encoded; the run id is the trace id that `traceparent` carries."""
HANDOFF_HEADER = "otelstream-handoff"
"""Names the hand-off `inject` began, which `attached` finishes (see `hubs/_handoffs.py`)."""

REMOTE_ORIGIN = -1
"""The `origin_span_id` of a mark extracted from a carrier: no span has it as parent, so every
span of the worker is a task of the run (its root lives in the process that started it)."""


class RunMarkPropagator(TextMapPropagator):
    """Injects the run mark of a streamed run; extracts it so the worker's spans join the run.

    Extract after `tracecontext` (as `propagator()` composes them): the mark
    takes its run id from the trace id already in the context.
    """

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        mark = (get_current() if context is None else context).get(RUN_KEY)
        if isinstance(mark, RunMark) and mark.run_id is not None:
            setter.set(carrier, HEADER, quote(mark.name, safe=""))

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        context = Context() if context is None else context  # as tracecontext does
        values = getter.get(carrier, HEADER)
        if not values:
            return context
        parent = trace.get_current_span(context).get_span_context()
        if not parent.is_valid:  # no traceparent: no run to join
            return context
        mark = RunMark(unquote(values[0]), REMOTE_ORIGIN)
        mark.run_id = format(parent.trace_id, "032x")
        return set_value(RUN_KEY, mark, context)

    @property
    def fields(self) -> set[str]:
        return {HEADER}


def propagator() -> CompositePropagator:
    """tracecontext, baggage and the run mark, in that order: for `set_global_textmap`."""
    return CompositePropagator(
        [TraceContextTextMapPropagator(), W3CBaggagePropagator(), RunMarkPropagator()]
    )


_PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), RunMarkPropagator()])


def inject(carrier: dict[str, str], context: Context | None = None) -> dict[str, str]:
    """Put `traceparent` (and `otelstream-run` inside a streamed run) into `carrier`; return it.

    Works whatever the global propagators are. Inside a streamed run it also begins a hand-off
    (`otelstream-handoff`): the run's end waits for the `attached` block that receives the
    carrier to finish (up to `OTELSTREAM_HANDOFF_WAIT_SECONDS`), so work not waited for by
    the task (a Celery `delay()`, a `Popen`) still streams in its run.
    """
    _PROPAGATOR.inject(carrier, context)
    mark = (get_current() if context is None else context).get(RUN_KEY)
    if isinstance(mark, RunMark) and mark.run_id is not None and HEADER in carrier:
        carrier[HANDOFF_HEADER] = _handoffs.begin(mark.run_id)
    return carrier


def extract(carrier: dict[str, str], context: Context | None = None) -> Context:
    """The context a worker starts its spans in: the remote parent span, and the run if any."""
    return _PROPAGATOR.extract(carrier, context)


@contextmanager
def attached(carrier: dict[str, str]) -> Iterator[Context]:
    """Make the carrier's context current for the block: every span opened in it joins the run.

    When the block exits, the hand-off `inject` began is finished: the run may end."""
    context = extract(carrier)
    token = attach(context)
    try:
        yield get_current()
    finally:
        detach(token)
        mark, handoff = context.get(RUN_KEY), carrier.get(HANDOFF_HEADER)
        if handoff and isinstance(mark, RunMark) and mark.run_id is not None:
            _handoffs.finish(mark.run_id, handoff)


__all__ = [
    "HANDOFF_HEADER",
    "HEADER",
    "RunMarkPropagator",
    "attached",
    "extract",
    "inject",
    "propagator",
]
