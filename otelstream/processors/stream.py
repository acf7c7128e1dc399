"""EventStreamProcessor: the SpanProcessor that turns a streamed run's spans into hub events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otelstream._errors import report, warn_limited
from otelstream.events import PIPELINE_COMPLETED, PIPELINE_STARTED, TASK_STARTED
from otelstream.events._levels import level_name
from otelstream.hubs import Hub, _handoffs
from otelstream.hubs._history import SEPARATOR
from otelstream.processors import _projection as projection
from otelstream.processors import _span_end
from otelstream.processors._filters import (
    GlobFilter,
    SpanFilter,
    combined,
    filter_for,
    guarded,
)
from otelstream.processors._linger import Linger
from otelstream.processors._overdue import OverdueWatch
from otelstream.processors._sink import LogSink
from otelstream.processors._span_end import hooks as _end_hooks
from otelstream.runs._mark import RUN_KEY, RunCancelled, RunMark, current_context
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
    (`otelstream.processors._projection.SpanEvent`), on the subscriber's loop.
    """

    def __init__(
        self, hub: Hub, settings: Settings | None = None, *, span_filter: SpanFilter | None = None
    ) -> None:
        """`span_filter(span)` (and the settings' span globs) decide which spans are tasks."""
        self.hub = hub
        _handoffs.register(hub)  # it hears of this process's hand-offs (`propagation`)
        settings = settings or hub.settings
        self._policy = projection.Policy(
            settings.attribute_allowlist, settings.max_string_length, settings.redact_errors
        )
        self._max_open = settings.max_open_spans
        # span id -> the start event of every projected span that has not ended yet
        self._open: dict[int, projection.SpanEvent] = {}
        if span_filter is not None:
            span_filter = guarded(span_filter)
            filter_for(hub, span_filter)  # a receiver on the hub shows services' spans by it
        self._filter = combined(
            GlobFilter(settings.span_include, settings.span_exclude), span_filter
        )
        self._hidden: dict[int, RunMark] = {}  # span id -> run, of the open filtered-out spans
        self._logs = LogSink(hub, settings)  # logfire's log spans
        # with an OTLP receiver on: a run's end waits for the services it called (_linger.py)
        self._linger = (
            Linger(hub, settings.otlp_linger_seconds, receiving=settings.otlp_receiving)
            if settings.otlp_linger_seconds > 0
            else None
        )
        self._calls: dict[str, set[int]] = {}  # run id -> its CLIENT and PRODUCER spans
        self._runs: dict[int, RunMark] = {}  # root span id -> its run's mark (errors_logged)
        # runs with a history: each open task's path of names from the root, and their deadlines
        self._paths: dict[int, str] = {}
        self._overdue = OverdueWatch(hub, settings.overdue_factor, settings.overdue_margin_seconds)
        self._shut = False  # shut down: it streams no new span (the SDK removes no processor)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        mark = (current_context() if parent_context is None else parent_context).get(RUN_KEY)
        if isinstance(mark, RunMark) and not self._shut:
            if mark.cancelled and mark.run_id is not None:
                raise RunCancelled(mark.run_id)  # on purpose: cancellation is cooperative
            try:  # not `with internal_errors(...)`: that costs ~1 µs a span
                self._start(span, mark)
            except Exception:
                report("EventStreamProcessor.on_start")

    def _start(self, span: Span, mark: RunMark) -> None:
        context, parent, policy = span.context, span.parent, self._policy
        name = None
        if (parent.span_id if parent is not None else 0) == mark.origin_span_id:
            kind, name = PIPELINE_STARTED, policy.clip(mark.name)
            mark.root_span_id = context.span_id
            self._runs[context.span_id] = mark
            run_id = mark.run_id = format(context.trace_id, "032x")
            shown = None
        else:
            kind, task_run_id = TASK_STARTED, mark.run_id
            if task_run_id is None:
                return
            run_id = task_run_id
            hidden = mark.hidden  # under a filtered-out span: its nearest shown ancestor instead
            shown = hidden.get(parent.span_id) if hidden and parent is not None else None
            # only logfire's spans need their attributes read to be named (or skipped): its own
            # (`logfire`) and its integrations' (`logfire.stdlib.logging`: logging's records)
            scope = span.instrumentation_scope
            if scope is not None and (scope.name == "logfire" or scope.name.startswith("logfire.")):
                logfire_attributes = span.attributes or {}
                task = projection.task_name(span.name, logfire_attributes)
                if task is None:
                    self._logfire_log(span, mark, shown or parent, logfire_attributes)
                    return
                name = policy.clip(task)
            if self._linger is not None and span.kind in self._linger.kinds:
                self._note_call(run_id, context.span_id)
            if self._filter is not None and not self._filter(span):
                self._hide(context.span_id, mark, shown or (parent.span_id if parent else None))
                return
        if len(self._open) >= self._max_open:
            warn_limited("otelstream: %d spans open, not streaming %r", self._max_open, span.name)
            return
        attributes = policy.attributes(span.attributes) if policy.allowlist else None
        event = projection.SpanEvent(
            kind, run_id, span, policy, name=name, attributes=attributes, shown_parent=shown
        )
        self._open[context.span_id] = event
        if mark.expected is not None:  # its pipeline has a history: say what is usual
            self._expect(event, span, mark, name, shown or (parent.span_id if parent else 0))
        self.hub.publish(run_id, event)

    def _expect(
        self, event: projection.SpanEvent, span: Span, mark: RunMark, name: str | None, above: int
    ) -> None:
        """Name the span by its path from the root (as the history does), give its start event
        the path's usual durations and watch it for overdue."""
        expected = mark.expected
        assert expected is not None
        span_id = span.context.span_id
        if event.type == PIPELINE_STARTED:
            path = ""
            self._paths[span_id] = path
        else:
            if name is None:
                task = projection.task_name(span.name, None)
                name = self._policy.clip(span.name if task is None else task)
            parent_path = self._paths.get(above)
            if parent_path is None:  # under a span this process did not see start
                return
            path = f"{parent_path}{SEPARATOR}{name}" if parent_path else name
            self._paths[span_id] = path
        usual = expected.get(path)
        if usual is None:
            return
        event.expected_ns, event.expected_p90_ns = round(usual[0] * 1e6), round(usual[1] * 1e6)
        self._overdue.watch(event.run_id, span_id, name or "", usual, run=not path)

    def _note_call(self, run_id: str, span_id: int) -> None:
        calls = self._calls.get(run_id)
        if calls is None:
            if len(self._calls) >= self._max_open:
                return
            calls = self._calls[run_id] = set()
        if len(calls) < 1000:
            calls.add(span_id)

    def _hide(self, span_id: int, mark: RunMark, shown_parent: int | None) -> None:
        if len(self._hidden) >= self._max_open:
            warn_limited("otelstream: %d filtered-out spans open", self._max_open)
            return
        if mark.hidden is None:
            mark.hidden = {}
        mark.hidden[span_id] = shown_parent
        self._hidden[span_id] = mark

    def _logfire_log(
        self, span: Span, mark: RunMark, parent: Any, attributes: Mapping[str, Any]
    ) -> None:
        """A logfire log call is a zero-length span: stream it as the log record it is."""
        if attributes.get("logfire.span_type") != "log":
            return
        number = attributes.get("logfire.level_num")
        number = number if isinstance(number, int) else None
        message = attributes.get("logfire.msg", span.name)
        logger = attributes.get("logfire.logger_name")  # a `logging` record's, through logfire
        parent_id = parent if isinstance(parent, int) else getattr(parent, "span_id", None)
        self._logs.log(
            mark,
            parent_id or mark.root_span_id,
            span.start_time or 0,
            number,
            level_name(number),
            message if isinstance(message, str) else str(message),
            logger if isinstance(logger, str) else "logfire",
            attributes,
        )

    def on_end(self, span: ReadableSpan) -> None:
        if _end_hooks:  # a trailing progress value, a run's logs_dropped: before its end
            _span_end.run(span.context.span_id)
        if not self._open:  # no streamed span is open anywhere: nothing to look up
            return
        opened = self._open.pop(span.context.span_id, None)
        if opened is not None:
            if self._paths:  # a run with a history: not overdue once ended (before its end)
                self._paths.pop(span.context.span_id, None)
                self._overdue.ended(span.context.span_id)
            try:
                kind = projection.end_type(span, opened)
                event = projection.SpanEvent(kind, opened.run_id, span, self._policy, opened)
                if kind == PIPELINE_COMPLETED:
                    mark = self._runs.pop(span.context.span_id, None)
                    if mark is not None:  # its log records have been counted: their ERRORs
                        event.errors_logged = mark.errors_logged
                if kind == PIPELINE_COMPLETED and self._calls:
                    calls = self._calls.pop(opened.run_id, None)
                    if calls and self._linger is not None:
                        run_id = opened.run_id
                        self._linger.hold(run_id, calls, lambda: self.hub.publish(run_id, event))
                        return
                self.hub.publish(opened.run_id, event)
            except Exception:
                report("EventStreamProcessor.on_end")
        elif self._hidden:
            mark = self._hidden.pop(span.context.span_id, None)
            if mark is not None and mark.hidden:
                mark.hidden.pop(span.context.span_id, None)

    def shutdown(self) -> None:
        """Held run ends (`_linger`) get their answers' time, at most `otlp_linger_seconds`
        more, then go out as they are; no span started after it streams."""
        self._shut = True
        self._overdue.close()
        if self._linger is not None:
            self._linger.flush(self._linger.seconds)
            self._linger.release_all()
        self._open.clear()
        self._hidden.clear()
        self._runs.clear()
        self._paths.clear()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """An ended run whose end is held for its calls' answers is not published yet: wait
        for it, as an exporter's flush waits for its queue."""
        if self._linger is None:
            return True
        return self._linger.flush(timeout_millis / 1000)
