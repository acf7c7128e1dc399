"""EventStreamProcessor: the SpanProcessor that turns a streamed run's spans into hub events."""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otelstream import _projection as projection
from otelstream._context import RUN_KEY, RunCancelled, RunMark, current_context
from otelstream._errors import report, warn_limited
from otelstream.hubs import Hub
from otelstream.settings import Settings


class EventStreamProcessor(SpanProcessor):
    """Add it beside your exporter: `provider.add_span_processor(EventStreamProcessor(hub))`.

    A span counts when its context carries the run mark that `streamed_run`
    (or the router) puts above a run's root span. Any other span costs one
    context lookup on start and one dict lookup on end. Nothing here blocks or
    raises into the code that opened the span, but for `RunCancelled` where a
    cancelled run opens its next span: that is how cancellation reaches it.
    """

    def __init__(self, hub: Hub, settings: Settings | None = None) -> None:
        self.hub = hub
        settings = settings or hub.settings
        self._policy = projection.Policy(
            settings.attribute_allowlist, settings.max_string_length, settings.redact_errors
        )
        self._max_open = settings.max_open_spans
        # span id -> (run id, name, is root) of every projected span that has not ended yet
        self._open: dict[int, tuple[str, str, bool]] = {}

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
        context, parent = span.context, span.parent
        parent_span_id = None if parent is None else parent.span_id
        is_root = (parent_span_id or 0) == mark.origin_span_id
        if is_root:
            name = self._policy.clip(mark.name)
            run_id = mark.run_id = format(context.trace_id, "032x")
        else:
            # only logfire's spans need their attributes read to be named (or skipped)
            scope = span.instrumentation_scope
            from_logfire = scope is not None and scope.name == "logfire"
            logfire_attributes = span.attributes if from_logfire else None
            task_run_id, task = mark.run_id, projection.task_name(span.name, logfire_attributes)
            if task_run_id is None or task is None:
                return
            run_id, name = task_run_id, self._policy.clip(task)
        if len(self._open) >= self._max_open:
            warn_limited("otelstream: %d spans open, not streaming %r", self._max_open, name)
            return
        self._open[context.span_id] = (run_id, name, is_root)
        policy = self._policy
        attributes = policy.attributes(span.attributes) if policy.allowlist else None
        self.hub.publish(
            run_id,
            projection.started(
                is_root=is_root,
                name=name,
                run_id=run_id,
                span_id=context.span_id,
                parent_span_id=parent_span_id,
                start_ns=span.start_time or 0,
                attributes=attributes,
            ),
        )

    def on_end(self, span: ReadableSpan) -> None:
        if not self._open:  # no streamed span is open anywhere: nothing to look up
            return
        found = self._open.pop(span.context.span_id, None)
        if found is not None:
            try:
                run_id, name, is_root = found
                event = projection.ended(
                    span, is_root=is_root, name=name, run_id=run_id, policy=self._policy
                )
                self.hub.publish(run_id, event)
            except Exception:
                report("EventStreamProcessor.on_end")

    def shutdown(self) -> None:
        self._open.clear()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
