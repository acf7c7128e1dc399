"""The fields of an event, declared once: the wire's key, the `Event` attribute holding it, its
JSON Schema and how it is read back.

Everything else is derived from this table or checked against it by
`tests/events/test_fields.py`: `Event.__slots__` and `BASE_FIELDS` are made from it, the
event's JSON Schema (`JSON_SCHEMA`) is built from it, `event_fields` reads an event back
with it; `Event.__init__`, the codec's writers (`event_dict` and its fast path
`plain_json`, hand-written because they run for every event) and the runs API's answer
models are checked against it. A new field is a row here, then what the test asks for.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, NamedTuple


class Field(NamedTuple):
    """One field every event may carry."""

    key: str
    """Its name in the event's JSON; the table's order is the JSON's."""
    attribute: str
    """The `Event` attribute that holds it (raw: ids as ints, times in ns)."""
    schema: dict[str, Any]
    """Its JSON Schema (`JSON_SCHEMA["properties"][key]`)."""
    read: Callable[[Any], Any]
    """The attribute's value from the JSON's (given None when the JSON has no such key)."""


def _hex(value: Any) -> int:
    return int(value or "0", 16)


def _hex_or_none(value: Any) -> int | None:
    return None if value is None else int(value, 16)


def _ns_of_ms(value: Any) -> int | None:
    return None if value is None else round(value * 1e6)


def parse_time(text: str) -> int:
    """Nanoseconds of a time the codec wrote (`format_time`, to the microsecond it keeps)."""
    moment = datetime.fromisoformat(text)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _ns_of_time(value: Any) -> int:
    return parse_time(str(value or "1970-01-01T00:00:00Z"))


def _as_is(value: Any) -> Any:
    return value


def _int(value: Any) -> int:
    return int(value or 0)


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _required(value: Any) -> Any:
    if value is None:
        raise KeyError("an event's `type` and `run_id` are required")
    return value


_HEX: Final = {"type": "string", "pattern": "^[0-9a-f]+$"}
_SPAN_ID: Final = {**_HEX, "minLength": 16, "maxLength": 16}

RUN_STATUSES: Final = ("success", "error", "cancelled", "running")
"""A run's `status`: how it ended, or `running`."""

FIELDS: Final = (
    Field("type", "type", {}, _required),  # its enum of kinds: `properties(types)`
    Field("name", "name", {"type": "string"}, _str),
    Field("run_id", "run_id", {**_HEX, "minLength": 32, "maxLength": 32}, _required),
    Field("span_id", "span_id", _SPAN_ID, _hex),
    Field(
        "parent_span_id", "parent_span_id", {"anyOf": [_SPAN_ID, {"type": "null"}]}, _hex_or_none
    ),
    Field("seq", "seq", {"type": "integer", "minimum": 1}, _int),
    Field("timestamp", "time_ns", {"type": "string", "format": "date-time"}, _ns_of_time),
    Field("duration_ms", "duration_ns", {"type": ["number", "null"]}, _ns_of_ms),
    Field("status", "status", {"enum": list(RUN_STATUSES)}, _as_is),
    Field("error", "error", {"type": ["string", "null"]}, _as_is),
    Field("error_type", "error_type", {"type": ["string", "null"]}, _as_is),
    Field("attributes", "attributes", {"type": "object"}, _as_is),
    Field(
        "errors_logged",
        "errors_logged",
        {
            "type": "integer",
            "description": "pipeline_completed, run_*: the run's ERROR-and-above log records",
        },
        _int,
    ),
    Field(
        "service",
        "service",
        {
            "type": "string",
            "description": "task_*: the service (resource `service.name`) that sent the span "
            "(or, on task_log, the log record) over OTLP; absent for the run's own process",
        },
        _as_is,
    ),
    Field(
        "expected_duration_ms",
        "expected_ns",
        {
            "type": "number",
            "description": "pipeline_started, task_started, *_overdue: how long the run or "
            "the task usually takes (the median of its last successful runs); absent "
            "before there are 3",
        },
        _ns_of_ms,
    ),
    Field(
        "expected_p90_ms",
        "expected_p90_ns",
        {
            "type": "number",
            "description": "with expected_duration_ms: the 90th percentile of the same runs",
        },
        _ns_of_ms,
    ),
)
"""Every event's fields, in the order its JSON has them."""

KIND_FIELDS: Final[dict[str, dict[str, Any]]] = {
    "last_seq": {
        "type": "integer",
        "description": "control notices: the last event this stream sent; resume after it",
    },
    "reason": {"type": "string", "description": "control notices: why the stream ended"},
    "level": {"type": "string", "description": "task_log: DEBUG, INFO, WARN, ERROR, FATAL"},
    "message": {
        "type": ["string", "null"],
        "description": "task_log, task_progress; control notices: for people",
    },
    "logger": {"type": "string", "description": "task_log: the logger's name"},
    "done": {"type": "number", "description": "task_progress: work done so far"},
    "total": {"type": ["number", "null"], "description": "task_progress: all the work"},
    "dropped": {"type": "integer", "description": "logs_dropped: records not sent"},
    "started_at": {"type": "string", "format": "date-time", "description": "run_*"},
    "running_ms": {
        "type": "number",
        "description": "task_overdue, pipeline_overdue: how long it had run when flagged",
    },
}
"""The fields of one kind of event only (a `DataEvent`'s `data`, a notice, a run summary),
with their schema: on the wire after the common ones."""

ATTRIBUTES: Final = tuple(field.attribute for field in FIELDS)
"""The `Event` attributes the fields live in (its slots)."""

BASE_FIELDS: Final = frozenset(field.key for field in FIELDS)
"""The fields every event may have (`service`: a span received over OTLP); the others are a
kind's own (`task_log`'s `level`...)."""


def event_fields(data: dict[str, Any]) -> dict[str, Any]:
    """An event's fields read back from its JSON, as `Event(**fields)` takes them: ids from
    hex, the time from its text (microseconds), the duration from milliseconds."""
    return {field.attribute: field.read(data.get(field.key)) for field in FIELDS}


def properties(types: list[str]) -> dict[str, Any]:
    """The JSON Schema properties of an event whose `type` is one of `types`."""
    common = {field.key: field.schema for field in FIELDS}
    return {**common, "type": {"enum": types}, **KIND_FIELDS}


__all__ = [
    "ATTRIBUTES",
    "BASE_FIELDS",
    "FIELDS",
    "KIND_FIELDS",
    "RUN_STATUSES",
    "Field",
    "event_fields",
    "parse_time",
    "properties",
]
