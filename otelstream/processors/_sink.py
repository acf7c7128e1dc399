"""The log sink: what every log record of a streamed run goes through on its way to the hub.

One place for the level filter, the per-run budget and the policy, shared by the three
ways a record arrives: `EventLogProcessor` (stdlib `logging` and the OpenTelemetry logs API),
the span processor (logfire's log spans) and the OTLP receiver (records of other services).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from opentelemetry.util.types import Attributes

from otelstream import _metrics
from otelstream.events import LOGS_DROPPED, TASK_LOG, TASK_PROGRESS, DataEvent
from otelstream.events._levels import severity
from otelstream.hubs import Hub
from otelstream.processors import _projection as projection
from otelstream.processors import _span_end
from otelstream.runs._mark import RunMark
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
        service: str | None = None,
        name: str | None = None,
    ) -> None:
        """One record; `service` and `name` (its span's) for a record received over OTLP."""
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
            _metrics.dropped(LOGS_DROPPED)  # a tally: no SDK call on the logging thread
            if first and mark.root_span_id:  # one notice, with the count, before the run ends
                _span_end.add(mark.root_span_id, lambda: self._dropped(mark))
            return
        data: dict[str, Any] = {"level": level, "message": message, "logger": logger}
        picked = policy.attributes(attributes) if policy.allowlist else None
        self.hub.publish(
            run_id,
            DataEvent(
                TASK_LOG,
                name or logger,
                run_id,
                span_id,
                time_ns,
                data,
                attributes=picked,
                service=service,
            ),
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


__all__ = ["DONE", "MESSAGE", "PROGRESS_EVENT", "TOTAL", "LogSink"]
