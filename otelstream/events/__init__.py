"""The events a run's stream carries (schema version 1), their wire form and the control notices.

The bottom of the house: nothing here imports any other part of otelstream (a test says so:
tests/house/test_layering.py). `_fields.py` declares an event's fields once, `_model.py` is
the event type and the schema made from them, `_wire.py` the codec (the only writer and
parser of the wire format), `_notices.py` the notices that end a stream early.
"""

from otelstream.events._model import (
    ENDED_TYPES,
    EVENTS_LOST,
    JSON_SCHEMA,
    KEEPALIVE,
    LOGS_DROPPED,
    PIPELINE_COMPLETED,
    PIPELINE_OVERDUE,
    PIPELINE_STARTED,
    RUN_ENDED,
    RUN_STARTED,
    SEND_TIMEOUT,
    SERVER_SHUTDOWN,
    SSE_MESSAGE_SCHEMA,
    STARTED_TYPES,
    STREAM_OVERFLOW,
    TASK_COMPLETED,
    TASK_ERROR,
    TASK_LOG,
    TASK_OVERDUE,
    TASK_PROGRESS,
    TASK_STARTED,
    DataEvent,
    Event,
    encode_sse,
    format_time,
)

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
