"""EventLogProcessor: the LogRecordProcessor that turns a streamed run's log records into events.

Stdlib `logging` reaches it through OpenTelemetry's `LoggingHandler`; so do
`otelstream.progress` records, which become `task_progress` events. The records then go
through the log sink (`_sink.LogSink`, re-exported here), as every other run's record does.
"""

from __future__ import annotations

import time

from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord

from otelstream._errors import report
from otelstream.events._levels import level_name
from otelstream.hubs import Hub
from otelstream.processors import _reach
from otelstream.processors._sink import PROGRESS_EVENT, LogSink
from otelstream.runs._mark import RUN_KEY, RunMark
from otelstream.settings import Settings


class EventLogProcessor(LogRecordProcessor):
    """Add it to your logs: `logger_provider.add_log_record_processor(EventLogProcessor(hub))`.

    A record counts when its context carries a streamed run's mark, as spans
    do; any other record costs one context lookup. It becomes `task_log`
    (`task_progress` for `otelstream.progress` records), with the `span_id`
    of the span it was emitted in. Nothing here blocks or raises.
    """

    def __init__(self, hub: Hub, settings: Settings | None = None) -> None:
        self.hub = hub
        self._sink = LogSink(hub, settings or hub.settings)
        self._closed = False  # shut down: its provider may live on (a global one), it does not

    def on_emit(self, log_record: ReadWriteLogRecord, _key: str = RUN_KEY) -> None:
        try:  # a `try` costs nothing until it catches; the context is never None from the API
            mark = log_record.log_record.context.get(_key)
            if mark is not None and not self._closed:
                self._emit(log_record, mark)
        except Exception:
            report("EventLogProcessor.on_emit")

    def _emit(self, log_record: ReadWriteLogRecord, mark: object) -> None:
        if not isinstance(mark, RunMark):
            return
        record = log_record.log_record
        span_id = record.span_id or mark.root_span_id
        hidden = mark.hidden
        if hidden and span_id in hidden:  # emitted in a span filtered out: its shown ancestor
            span_id = hidden[span_id] or mark.root_span_id
        time_ns = record.timestamp or record.observed_timestamp or time.time_ns()
        if record.event_name == PROGRESS_EVENT:
            _reach.count()
            self._sink.progress(mark, span_id, time_ns, record.attributes)
            return
        number = None if record.severity_number is None else record.severity_number.value
        body = record.body
        scope = log_record.instrumentation_scope
        self._sink.log(
            mark,
            span_id,
            time_ns,
            number,
            level_name(number, record.severity_text),
            body if isinstance(body, str) else str(body),
            "" if scope is None else scope.name,
            record.attributes,
        )

    def shutdown(self) -> None:
        """Stream no more records: a set-up that was shut down (`Telemetry.shutdown`) must not
        go on counting a run's records beside the one that replaced it."""
        self._closed = True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


__all__ = ["EventLogProcessor", "LogSink"]
