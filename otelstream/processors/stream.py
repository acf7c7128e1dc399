"""EventStreamProcessor: the SpanProcessor that turns a streamed run's spans into hub events."""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otelstream import _projection as projection
from otelstream._context import RUN_KEY, RunCancelled, RunMark, current_context
from otelstream._errors import report, warn_limited
from otelstream.events import PIPELINE_STARTED, TASK_STARTED
from otelstream.hubs import Hub
from otelstream.settings import Settings


class EventStreamProcessor(SpanProcessor):
    """Add it beside your exporter: `provider.add_span_processor(EventStreamProcessor(hub))`.

    A span counts when its context carries the run mark that `streamed_run`
    (or the router) puts above a run's root span. Any other span costs one
    context lookup on start and one dict lookup on end. Nothing here blocks or
    raises into the code that opened the span, but for `RunCancelled` where a
    cancelled run opens its next span: that is how cancellation reaches it.

    A streamed span costs its thread a record, not a projection: the event
    published holds the span and is projected where it is first read
    (`otelstream._projection.SpanEvent`), on the subscriber's loop.
    """

    def __init__(self, hub: Hub, settings: Settings | None = None) -> None:
        self.hub = hub
        settings = settings or hub.settings
        self._policy = projection.Policy(
            settings.attribute_allowlist, settings.max_string_length, settings.redact_errors
        )
        self._max_open = settings.max_open_spans
        # span id -> the start event of every projected span that has not ended yet
        self._open: dict[int, projection.SpanEvent] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        mark = (current_context() if parent_context is None else parent_context).get(RUN_KEY)
        if isinstance(mark, RunMark):
            if mark.cancelled and mark.run_id is not None:
                raise RunCancelled(mark.run_id)  # on purpose: cancellation is cooperative
            try:  # not `with internal_errors(...)`: that costs ~1 µs a span
                self._start(span, mark)
            except Exception:
                report("EventStreamProcessor.on_start")

    def _start(self, span: Span, mark: RunMark) -> None:
        context, parent, policy = span.context, span.parent, self._policy
        name = None
        if ((parent.span_id if parent is not None else 0) or 0) == mark.origin_span_id:
            kind, name = PIPELINE_STARTED, policy.clip(mark.name)
            run_id = mark.run_id = format(context.trace_id, "032x")
        else:
            kind, task_run_id = TASK_STARTED, mark.run_id
            if task_run_id is None:
                return
            run_id = task_run_id
            # only logfire's spans need their attributes read to be named (or skipped)
            scope = span.instrumentation_scope
            if scope is not None and scope.name == "logfire":
                task = projection.task_name(span.name, span.attributes)
                if task is None:
                    return
                name = policy.clip(task)
        if len(self._open) >= self._max_open:
            warn_limited("otelstream: %d spans open, not streaming %r", self._max_open, span.name)
            return
        attributes = policy.attributes(span.attributes) if policy.allowlist else None
        event = projection.SpanEvent(kind, run_id, span, policy, name=name, attributes=attributes)
        self._open[context.span_id] = event
        self.hub.publish(run_id, event)

    def on_end(self, span: ReadableSpan) -> None:
        if not self._open:  # no streamed span is open anywhere: nothing to look up
            return
        opened = self._open.pop(span.context.span_id, None)
        if opened is not None:
            try:
                kind = projection.end_type(span, opened)
                event = projection.SpanEvent(kind, opened.run_id, span, self._policy, opened)
                self.hub.publish(opened.run_id, event)
            except Exception:
                report("EventStreamProcessor.on_end")

    def shutdown(self) -> None:
        self._open.clear()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
