"""The mark that makes a span subtree a streamed run, carried in the OpenTelemetry context."""

from __future__ import annotations

import contextvars
from collections.abc import Callable

from opentelemetry import context as otel_context

RUN_KEY = otel_context.create_key("otelstream-run")

STREAMED_MARK = "otelstream.streamed"
"""A resource attribute of processes that stream their own runs' spans (`setup_telemetry` sets
it): their spans reach the OTLP receiver too (through the collector), and are not streamed
twice."""


def _current_context_reader() -> Callable[[], otel_context.Context]:
    """`get_current()` without its two Python calls: the SDK's own ContextVar's `get`.

    Read here only, once (the runtime context's attribute is private); another
    runtime context, or a renamed attribute, falls back to `get_current`.
    """
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if isinstance(variable, contextvars.ContextVar):
        return variable.get
    return otel_context.get_current


current_context = _current_context_reader()
"""The current OpenTelemetry Context, read as cheaply as every span's start needs."""


class RunMark:
    """Put in the context just above a run's root span; every span below inherits it.

    `origin_span_id` is the span the root is started under (0 for a new
    trace): the span with that parent is the root, any other span is a task.
    Spans outside the subtree (the HTTP server span, the framework's per-chunk
    spans) never see the mark, so they are never projected.
    """

    __slots__ = (
        "cancelled",
        "errors_logged",
        "expected",
        "hidden",
        "log_bytes",
        "log_events",
        "logs_dropped",
        "name",
        "origin_span_id",
        "root_span_id",
        "run_id",
    )

    def __init__(
        self,
        name: str,
        origin_span_id: int,
        expected: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        self.name = name
        self.origin_span_id = origin_span_id
        self.run_id: str | None = None  # set once the root span has started
        self.root_span_id = 0  # likewise
        self.cancelled = False  # set by a cancel request; the run's next span raises
        # the run's log budget, spent by its task_log events (the mark lives as long as the run)
        self.log_events = 0
        self.log_bytes = 0
        self.logs_dropped = 0
        self.errors_logged = 0  # its ERROR-and-above log records, dropped ones too
        self.hidden: dict[int, int | None] | None = None
        """Span filters: each filtered-out open span -> its nearest shown ancestor."""
        self.expected = expected
        """What is usual for this pipeline: (median, p90) ms by task path, the run's own
        under "" (`hubs._history.expectations`); None when it has no history yet."""


class RunCancelled(Exception):
    """Raised where a cancelled run opens its next span, so the pipeline stops there.

    An Exception, not a BaseException, so that the spans it leaves record it and
    the run ends with `pipeline_completed` and `status: cancelled`.
    """

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} was cancelled")
        self.run_id = run_id


def is_cancelled() -> bool:
    """True inside a streamed run that was asked to stop (`DELETE /runs/{id}`, shutdown).

    Cheap (one context lookup, as a span's start costs), so a long loop that opens
    no span can ask every round; outside a run it is False.
    """
    mark = current_context().get(RUN_KEY)
    return isinstance(mark, RunMark) and mark.cancelled


def check_cancelled() -> None:
    """Raise `RunCancelled` inside a streamed run that was asked to stop; else do nothing.

    Cancellation reaches a task where it opens its next span; code that runs long
    without opening one (a loop, a wait) calls this to stop as soon, and its run
    ends with `status: cancelled`.
    """
    mark = current_context().get(RUN_KEY)
    if isinstance(mark, RunMark) and mark.cancelled:
        raise RunCancelled(mark.run_id or mark.name)


def marked_context(
    name: str,
    parent: otel_context.Context | None = None,
    expected: dict[str, tuple[float, float]] | None = None,
) -> otel_context.Context:
    """The context to start a run's root span in: `parent` (default: current) plus a mark
    (with what the pipeline's history says is usual, when the caller knows it)."""
    from opentelemetry import trace

    ctx = otel_context.get_current() if parent is None else parent
    origin = trace.get_current_span(ctx).get_span_context()
    origin_span_id = origin.span_id if origin.is_valid else 0
    return otel_context.set_value(RUN_KEY, RunMark(name, origin_span_id, expected), ctx)
