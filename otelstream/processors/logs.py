"""EventLogProcessor: the LogRecordProcessor that turns a streamed run's log records into events.

Stdlib `logging` reaches it through OpenTelemetry's `LoggingHandler`; so do
`otelstream.progress` records, which become `task_progress` events.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.util.types import Attributes

from otelstream._errors import report
from otelstream.events import LOGS_DROPPED, TASK_LOG, TASK_PROGRESS, DataEvent
from otelstream.events._levels import level_name, severity
from otelstream.hubs import Hub
from otelstream.processors import _projection as projection
from otelstream.processors import _span_end
from otelstream.runs._mark import RUN_KEY, RunMark
from otelstream.settings import Settings

PROGRESS_EVENT = "otelstream.progress"
"""The `event_name` of the log records `otelstream.progress` emits."""
DONE, TOTAL, MESSAGE = "otelstream.progress.done", "otelstream.progress.total", "message"

_ERROR = 17
"""OpenTelemetry's SeverityNumber.ERROR: records from here up count in `errors_logged`."""
_EVENT_OVERHEAD_BYTES = 200
"""What a task_log event costs besides its message, counted against the bytes budget."""


class LogSink:
    """What every log record of a run goes through: the level filter, the budget, the policy.

    Shared by `EventLogProcessor` and the span processor (logfire's log spans).
    The budget lives on the run's mark, so it is freed with the run.
    """

    def __init__(self, hub: Hub, settings: Settings) -> None:
        self.hub = hub
        self.policy = projection.Policy(
            settings.attribute_allowlist, settings.max_string_length, settings.redact_errors
        )
        self.min_severity = severity(settings.log_level)
        self.max_events = settings.max_log_events_per_run
        self.max_bytes = settings.max_log_bytes_per_run
        self._lock = threading.Lock()

    def log(
        self,
        mark: RunMark,
        span_id: int,
        time_ns: int,
        severity_number: int | None,
        level: str,
        message: str,
        logger: str,
        attributes: Attributes,
    ) -> None:
        if severity_number is not None and 0 < severity_number < self.min_severity:
            return
        run_id = mark.run_id
        if run_id is None:
            return
        error = severity_number is not None and severity_number >= _ERROR
        policy = self.policy
        message = policy.message(message)
        size = len(message) + len(logger) + _EVENT_OVERHEAD_BYTES
        with self._lock:
            if error:
                mark.errors_logged += 1  # read when the run's end is published
            over = mark.logs_dropped or (
                mark.log_events >= self.max_events or mark.log_bytes + size > self.max_bytes
            )
            if over:
                mark.logs_dropped += 1
                first = mark.logs_dropped == 1
            else:
                mark.log_events += 1
                mark.log_bytes += size
        if over:
            if first and mark.root_span_id:  # one notice, with the count, before the run ends
                _span_end.add(mark.root_span_id, lambda: self._dropped(mark))
            return
        data: dict[str, Any] = {"level": level, "message": message, "logger": logger}
        picked = policy.attributes(attributes) if policy.allowlist else None
        self.hub.publish(
            run_id,
            DataEvent(TASK_LOG, logger, run_id, span_id, time_ns, data, attributes=picked),
        )

    def progress(self, mark: RunMark, span_id: int, time_ns: int, attributes: Attributes) -> None:
        run_id = mark.run_id
        if run_id is None or not attributes:
            return
        message = attributes.get(MESSAGE)
        total = attributes.get(TOTAL)
        data = {
            "done": attributes.get(DONE, 0),
            "total": total if isinstance(total, int | float) else None,
            "message": self.policy.message(message) if isinstance(message, str) else None,
        }
        event = DataEvent(TASK_PROGRESS, PROGRESS_EVENT, run_id, span_id, time_ns, data)
        self.hub.publish(run_id, event)

    def _dropped(self, mark: RunMark) -> None:
        run_id = mark.run_id
        if run_id is not None:
            data = {
                "dropped": mark.logs_dropped,
                "message": f"{mark.logs_dropped} log records of this run were not streamed: "
                f"over {self.max_events} records or {self.max_bytes} bytes",
            }
            event = DataEvent(
                LOGS_DROPPED, mark.name, run_id, mark.root_span_id, time.time_ns(), data
            )
            self.hub.publish(run_id, event)


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

    def on_emit(self, log_record: ReadWriteLogRecord, _key: str = RUN_KEY) -> None:
        try:  # a `try` costs nothing until it catches; the context is never None from the API
            mark = log_record.log_record.context.get(_key)
            if mark is not None:
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
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


__all__ = ["EventLogProcessor", "LogSink"]
