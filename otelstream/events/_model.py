"""The event type that a run's stream carries (schema version 1); its JSON and frame are written
by the wire codec (`otelstream.events._wire`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

PIPELINE_STARTED: Final = "pipeline_started"
TASK_STARTED: Final = "task_started"
TASK_COMPLETED: Final = "task_completed"
TASK_ERROR: Final = "task_error"
PIPELINE_COMPLETED: Final = "pipeline_completed"
TASK_LOG: Final = "task_log"
"""A log record emitted inside a task (`level`, `message`, `logger`; `span_id` is the task)."""
TASK_PROGRESS: Final = "task_progress"
"""A task's progress (`done`, `total` or null, `message`), at most ~10 a second per task."""
LOGS_DROPPED: Final = "logs_dropped"
"""Once per run, at its end, when its log budget was spent: `dropped` records were not sent."""
TASK_OVERDUE: Final = "task_overdue"
"""Once per task, while it runs: it has run well past its usual time (`running_ms`, with the
task's `expected_duration_ms` and `expected_p90_ms`; `span_id` is the task)."""
PIPELINE_OVERDUE: Final = "pipeline_overdue"
"""Once per run, while it runs: the run as a whole has run well past its usual time."""
RUN_STARTED: Final = "run_started"
"""On the runs stream: a run began (`run_id`, `name`, `status`, `started_at`, ...)."""
RUN_ENDED: Final = "run_ended"
"""On the runs stream: a run ended, with its `status`, `duration_ms` and `error_type`."""

# Every field of an event, declared once; the control notices, with the client's copy of them.
from otelstream.events._fields import ATTRIBUTES, properties  # noqa: E402
from otelstream.events._notices import (  # noqa: E402
    EVENTS_LOST,
    SEND_TIMEOUT,
    SERVER_SHUTDOWN,
    STREAM_OVERFLOW,
)

# Every byte of the wire format is written by the codec.
from otelstream.events._wire import (  # noqa: E402
    encode_sse,
    event_dict,
    format_time,
    frame,
    plain_json,
    to_json,
    utf8,
)

EVENT_BYTES: Final = 1_800
"""What a waiting event holds besides its strings: the event and its share of its span.
Measured with tracemalloc over 20,000 streamed spans with two small attributes: 1,770 bytes
an event (a span's start and end events hold it together)."""

STARTED_TYPES: Final = frozenset({PIPELINE_STARTED, TASK_STARTED})
ENDED_TYPES: Final = frozenset({TASK_COMPLETED, TASK_ERROR, PIPELINE_COMPLETED})


class Event:
    """One step of a run, as the span processor saw it.

    It holds raw ids and nanoseconds; the hub gives it its `seq`, and the JSON
    and SSE forms are made once, off the span hot path (on the first
    subscriber's event loop, shared by all others). The span processor
    publishes `otelstream.processors._projection.SpanEvent`, a subclass whose fields are
    themselves projected from the span only when first read.
    """

    __slots__ = ("_sse", *ATTRIBUTES)  # its fields, as `_fields.FIELDS` declares them

    def __init__(
        self,
        type: str,
        name: str,
        run_id: str,
        span_id: int,
        parent_span_id: int | None,
        time_ns: int,
        *,
        duration_ns: int | None = None,
        status: str | None = None,
        error: str | None = None,
        error_type: str | None = None,
        attributes: dict[str, Any] | None = None,
        seq: int = 0,
        errors_logged: int = 0,
        service: str | None = None,
        expected_ns: int | None = None,
        expected_p90_ns: int | None = None,
    ) -> None:
        self.type = type
        self.name = name
        self.run_id = run_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.time_ns = time_ns
        self.duration_ns = duration_ns
        self.status = status
        self.error = error
        self.error_type = error_type
        self.attributes = attributes
        self.seq = seq
        self.errors_logged = errors_logged  # pipeline_completed: the run's ERROR log records
        self.service = service  # a span another service sent over OTLP: its `service.name`
        self.expected_ns = expected_ns  # what is usual (the run's or task's history), if known
        self.expected_p90_ns = expected_p90_ns
        self._sse: bytes | None = None

    def __repr__(self) -> str:
        return f"<Event {self.seq} {self.type} {self.name!r} run={self.run_id}>"

    def to_dict(self) -> dict[str, Any]:
        return event_dict(self)

    def to_json(self) -> str:
        # most events: the codec writes them without a dict or the encoder (not for kinds
        # that override `to_dict`)
        if type(self).to_dict is Event.to_dict:
            text = plain_json(self)
            if text is not None:
                return text
        return to_json(self.to_dict())

    def weight(self) -> int:
        """The bytes this event keeps alive while it waits in a hub's buffer: the measured base
        (`EVENT_BYTES`), plus the strings a task makes as large as it likes (attribute values,
        a log record's message). Cheap, on the span thread: a kind whose fields are projected
        later weighs itself without projecting them (`SpanEvent`)."""
        return EVENT_BYTES + text_size(self.attributes)

    @property
    def sse(self) -> bytes:
        """The event framed for the wire, computed once and shared by every subscriber."""
        sse = self._sse
        if sse is None:
            sse = self._sse = frame(self.seq, utf8(self.to_json()))
        return sse


class DataEvent(Event):
    """An event with fields of its own type: `task_log` (`level`, `message`, `logger`),
        `task_progress` (`done`, `total`, `message`), `logs_dropped` (`dropped`, `message`),
        `task_overdue` and `pipeline_overdue` (`running_ms`).

    A `task_log` received over OTLP has the `service` that sent it, and the name of its span when
    that span was seen (else its logger's)."""

    __slots__ = ("data",)

    def __init__(
        self,
        type: str,
        name: str,
        run_id: str,
        span_id: int,
        time_ns: int,
        data: dict[str, Any],
        *,
        attributes: dict[str, Any] | None = None,
        seq: int = 0,
        service: str | None = None,
        expected_ns: int | None = None,
        expected_p90_ns: int | None = None,
    ) -> None:
        super().__init__(
            type,
            name,
            run_id,
            span_id,
            None,
            time_ns,
            attributes=attributes,
            seq=seq,
            service=service,
            expected_ns=expected_ns,
            expected_p90_ns=expected_p90_ns,
        )
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(self.data)
        return data

    def weight(self) -> int:
        return super().weight() + text_size(self.data)


def text_size(values: Mapping[str, Any] | None) -> int:
    """The characters of the strings among a mapping's values (and in its lists and tuples of
    strings): what an event's weight adds to its base."""
    if not values:
        return 0
    size = 0
    for value in values.values():
        if isinstance(value, str):
            size += len(value)
        elif isinstance(value, (tuple, list)):  # a tuple: no union is made per call
            size += sum(len(item) for item in value if isinstance(item, str))
    return size


KEEPALIVE: Final = b": keep-alive\n\n"

JSON_SCHEMA: Final[dict[str, Any]] = {
    "title": "Event",
    "description": "One step of a run (schema version 1); clients ignore fields they do not know.",
    "type": "object",
    "properties": properties(
        [
            PIPELINE_STARTED,
            TASK_STARTED,
            TASK_COMPLETED,
            TASK_ERROR,
            PIPELINE_COMPLETED,
            TASK_LOG,
            TASK_PROGRESS,
            LOGS_DROPPED,
            TASK_OVERDUE,
            PIPELINE_OVERDUE,
            RUN_STARTED,
            RUN_ENDED,
            STREAM_OVERFLOW,
            SERVER_SHUTDOWN,
            EVENTS_LOST,
            SEND_TIMEOUT,
        ]
    ),
    "required": ["type", "run_id"],
}
"""The JSON Schema of an event, for the OpenAPI document."""

SSE_MESSAGE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "One Server-Sent Event: `id` is the event's `seq` (none on stream_overflow) "
    "and `data` one event as JSON; idle streams send `: keep-alive` comments.",
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": JSON_SCHEMA,
        },
    },
    "required": ["data"],
}


__all__ = [
    "ENDED_TYPES",
    "EVENTS_LOST",
    "JSON_SCHEMA",
    "KEEPALIVE",
    "LOGS_DROPPED",
    "PIPELINE_COMPLETED",
    "PIPELINE_OVERDUE",
    "PIPELINE_STARTED",
    "RUN_ENDED",
    "RUN_STARTED",
    "SEND_TIMEOUT",
    "SERVER_SHUTDOWN",
    "SSE_MESSAGE_SCHEMA",
    "STARTED_TYPES",
    "STREAM_OVERFLOW",
    "TASK_COMPLETED",
    "TASK_ERROR",
    "TASK_LOG",
    "TASK_OVERDUE",
    "TASK_PROGRESS",
    "TASK_STARTED",
    "DataEvent",
    "Event",
    "encode_sse",
    "format_time",
]
