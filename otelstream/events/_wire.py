"""The wire codec: an event to its JSON and its SSE frame, control notices, a frame read back,
a run's summary. No other module writes or parses the wire format (server, Redis, client).

Server-free (the standard library and the notice definitions only), so the client
imports it too. The bytes are what the README's schema says: fields in schema order,
no spaces, UTF-8, a lone surrogate (what `os.fsdecode` makes of a non-UTF-8 name)
written as the JSON escape `\\udcff` (`backslashreplace`), so no string can fail a
frame and every hub sends the same bytes for the same event.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from otelstream.events._fields import BASE_FIELDS, event_fields, parse_time
from otelstream.events._notices import MESSAGES, NOTICE_TYPES

if TYPE_CHECKING:
    from otelstream.events._model import Event

FINAL_TYPE: Final = "pipeline_completed"
"""The type of the event that ends a run's stream (`events.PIPELINE_COMPLETED`)."""

OUTCOME_LOGGER: Final = "otelstream.runs.outcome"
"""The logger of the runner's own end-of-run record ("run … failed", "run … was cancelled"):
in the stream for completeness, and not drawn again by the page or the command, which show
the run's outcome from `pipeline_completed` already."""

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_string = json.encoder.encode_basestring  # a str as JSON, as `_encoder` writes it
_decode = json.JSONDecoder().decode


# -- text ---------------------------------------------------------------------------------------

_second: tuple[int, str] = (-1, "")  # the last second formatted, and its text


def format_time(time_ns: int) -> str:
    """RFC 3339 UTC with microseconds, as browsers' `Date` parse it.

    Date and time of day are formatted once per second, not once per event.
    """
    global _second
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    cached, text = _second  # one tuple: another thread sees the old pair or the new one
    if cached != seconds:
        text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (seconds, text)
    micros = nanos // 1000
    return f"{text}.{micros:06d}Z" if micros else f"{text}Z"


def utf8(text: str) -> bytes:
    """JSON text as the wire's bytes: a lone surrogate was escaped by the encoder already."""
    return text.encode("utf-8", "backslashreplace")


def to_json(data: Any) -> str:
    """Any JSON-ready value as the wire writes it: no spaces, non-ASCII as is."""
    return _encoder.encode(data)


# -- events -------------------------------------------------------------------------------------


def event_dict(event: Event) -> dict[str, Any]:
    """The schema's fields of an event, in the schema's order."""
    parent = event.parent_span_id
    data: dict[str, Any] = {
        "type": event.type,
        "name": event.name,
        "run_id": event.run_id,
        "span_id": format(event.span_id, "016x"),
        "parent_span_id": None if parent is None else format(parent, "016x"),
        "seq": event.seq,
        "timestamp": format_time(event.time_ns),
    }
    if event.duration_ns is not None:
        data["duration_ms"] = event.duration_ns / 1e6
    if event.status is not None:
        data["status"] = event.status
    if event.error is not None or event.error_type is not None:
        data["error"] = event.error
        data["error_type"] = event.error_type
    if event.attributes:
        data["attributes"] = event.attributes
    if event.errors_logged:
        data["errors_logged"] = event.errors_logged
    if event.service is not None:
        data["service"] = event.service
    if event.expected_ns is not None:
        data["expected_duration_ms"] = event.expected_ns / 1e6
        if event.expected_p90_ns is not None:
            data["expected_p90_ms"] = event.expected_p90_ns / 1e6
    return data


def plain_json(event: Event) -> str | None:
    """The JSON of an event that has only the common fields (most), written without a dict or
    the encoder; None for any other (`to_json(event_dict(event))` writes it)."""
    if event.status is not None or event.error is not None or event.error_type is not None:
        return None
    if event.attributes or event.errors_logged or event.expected_ns is not None:
        return None
    parent = "null" if event.parent_span_id is None else f'"{event.parent_span_id:016x}"'
    head = (
        f'{{"type":"{event.type}","name":{_string(event.name)},"run_id":"{event.run_id}",'
        f'"span_id":"{event.span_id:016x}","parent_span_id":{parent},"seq":{event.seq},'
        f'"timestamp":"{format_time(event.time_ns)}"'
    )
    if event.duration_ns is not None:
        head = f'{head},"duration_ms":{event.duration_ns / 1e6!r}'
    if event.service is not None:
        return f'{head},"service":{_string(event.service)}}}'
    return head + "}"


def frame(seq: int | None, data: bytes) -> bytes:
    """One SSE message: `id:` the event's seq (none for a notice), one `data:` line of JSON.

    JSON escapes every control character, so nothing inside a value can end the
    field or the message early."""
    if seq is None:
        return b"data: " + data + b"\n\n"
    return b"id: %d\ndata: %s\n\n" % (seq, data)


def encode_sse(data: str, *, event_id: int | None = None) -> bytes:
    """Frame JSON text that may come from elsewhere: refused if it is not a single line."""
    if "\n" in data or "\r" in data:
        raise ValueError("SSE data must be a single line")
    return frame(event_id, utf8(data))


# -- notices ------------------------------------------------------------------------------------


def notice(
    type: str, run_id: str, last_seq: int, *, reason: str | None = None, message: str | None = None
) -> dict[str, object]:
    """A notice as JSON-ready data; `message` defaults to the type's own words."""
    if type not in NOTICE_TYPES:
        raise ValueError(f"not a notice type: {type!r}")
    return {
        "type": type,
        "run_id": run_id,
        "last_seq": last_seq,
        "reason": reason or type,
        "message": message or MESSAGES[type],
    }


def notice_frame(
    type: str, run_id: str, last_seq: int, *, reason: str | None = None, message: str | None = None
) -> bytes:
    """The notice framed for the wire: one `data:` line and no `id:`, so a browser's
    `Last-Event-ID` stays that of the last real event."""
    data = notice(type, run_id, last_seq, reason=reason, message=message)
    return frame(None, utf8(to_json(data)))


# -- reading ------------------------------------------------------------------------------------


def data_of(frame: bytes) -> bytes:
    """The JSON of one frame (its `data:` line)."""
    start = 0 if frame.startswith(b"data: ") else frame.index(b"\ndata: ") + 1
    return frame[start + 6 : frame.index(b"\n", start)]


def parse(data: str | bytes) -> dict[str, Any]:
    """One event's (or notice's) JSON, as the client and the hubs read it."""
    parsed = json.loads(data)
    if not isinstance(parsed, dict):
        raise ValueError("an event is a JSON object")
    return parsed


def parse_frame(frame: bytes) -> dict[str, Any]:
    return parse(data_of(frame))


def is_final(data: dict[str, Any]) -> bool:
    """Whether a parsed event ends its run's stream."""
    return data.get("type") == FINAL_TYPE


_FINAL_TOKEN: Final = b'"' + FINAL_TYPE.encode() + b'"'


def ends_run(data: bytes) -> bool:
    """`is_final` of an event's JSON: parsed only when the type's word is in it at all (a
    name or attribute may hold it too; the parsed type decides)."""
    return _FINAL_TOKEN in data and is_final(parse(data))


# -- runs ---------------------------------------------------------------------------------------


def run_summary(
    run_id: str,
    name: str,
    started_ns: int,
    status: str = "running",
    duration_ns: int | None = None,
    error_type: str | None = None,
    errors_logged: int = 0,
) -> dict[str, Any]:
    """A run as `GET /runs` lists it and `run_started`/`run_ended` carry it, in this order,
    on every hub: what a run's end changes (`summary_end`) is its tail, from `status` on.
    `errors_logged` (its ERROR-and-above log records) only when there were some."""
    summary = {
        "run_id": run_id,
        "name": name,
        "started_at": format_time(started_ns),
        "status": status,
        "duration_ms": None if duration_ns is None else duration_ns / 1e6,
        "error_type": error_type,
    }
    if errors_logged:
        summary["errors_logged"] = errors_logged
    return summary


def summary_end(
    status: str, duration_ns: int | None, error_type: str | None, errors_logged: int = 0
) -> bytes:
    """The tail of a run's summary JSON from `"status":` to its closing brace, once it ended
    (the Redis hub splices it into the summary it stored at the start)."""
    end = run_summary("", "", 0, status, duration_ns, error_type, errors_logged)
    del end["run_id"], end["name"], end["started_at"]
    return utf8(to_json(end)[1:])


def lifecycle_head(kind: str) -> str:
    """A runs-stream event's JSON up to its seq (`run_started`, `run_ended`): the seq and the
    summary follow."""
    return f'{{"type":"{kind}","seq":'


__all__ = [
    "BASE_FIELDS",
    "FINAL_TYPE",
    "OUTCOME_LOGGER",
    "data_of",
    "encode_sse",
    "ends_run",
    "event_dict",
    "event_fields",
    "format_time",
    "frame",
    "is_final",
    "lifecycle_head",
    "notice",
    "notice_frame",
    "parse",
    "parse_frame",
    "parse_time",
    "plain_json",
    "run_summary",
    "summary_end",
    "to_json",
    "utf8",
]
