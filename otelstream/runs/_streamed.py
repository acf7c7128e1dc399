"""A run's root span and what names it: `RunHandle`, the runner's errors, `streamed_run`.

Its own module because opening a run's root span (the run id is the trace id) is one concept
that both `streamed_run` (a block of the caller's code) and `PipelineRunner` (a registered
pipeline in a worker thread) share; `_runner.py` keeps the workers, the queue and the ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context, attach, detach, get_current
from opentelemetry.trace import Span

from otelstream.runs._mark import RUN_KEY, marked_context


@dataclass(frozen=True)
class RunHandle:
    run_id: str
    """The trace id, 32 lowercase hex characters: the run's name in the stream and in Jaeger."""
    name: str
    span: Span


class UnknownPipeline(LookupError):
    pass


class RunsFull(RuntimeError):
    """Every worker is busy and the queue of waiting runs is full, or the runner is shut down."""


def _tracer(tracer_provider: trace.TracerProvider | None) -> trace.Tracer:
    return trace.get_tracer("otelstream", tracer_provider=tracer_provider)


def _run_id(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


@contextmanager
def streamed_run(
    name: str, *, tracer_provider: trace.TracerProvider | None = None, new_trace: bool = False
) -> Iterator[RunHandle]:
    """Stream a block of your own code: opens the root span `pipeline:{name}` and yields the run.

    Spans opened inside the block (and in threads that carry its context)
    become the run's tasks. Inside another streamed run it is just a task.
    The run id is the trace id, so a trace holds one run: for a second run in
    the same request, pass `new_trace=True` (its root then links to the
    current span instead of being its child).
    """
    current = get_current()
    links: list[trace.Link] = []
    token = None
    if current.get(RUN_KEY) is None:
        parent = None
        if new_trace:
            origin = trace.get_current_span(current).get_span_context()
            links = [trace.Link(origin)] if origin.is_valid else []
            parent = Context()
        token = attach(marked_context(name, parent))
    try:
        span = _tracer(tracer_provider).start_span(f"pipeline:{name}", links=links)
        with trace.use_span(span, end_on_exit=True):
            yield RunHandle(_run_id(span), name, span)
    finally:
        if token is not None:
            detach(token)
