import json

import pytest

from otelstream.events import Event, encode_sse, format_time

RUN = "0af7651916cd43dd8448eb211c80319c"


def test_task_completed_json_has_the_schema_fields() -> None:
    event = Event(
        "task_completed",
        "compute",
        RUN,
        0xB7AD6B7169203331,
        0x00F067AA0BA902B7,
        1_700_000_000_123_456_789,
        duration_ns=1_500_000,
        seq=3,
    )
    assert event.to_dict() == {
        "type": "task_completed",
        "name": "compute",
        "run_id": RUN,
        "span_id": "b7ad6b7169203331",
        "parent_span_id": "00f067aa0ba902b7",
        "seq": 3,
        "timestamp": "2023-11-14T22:13:20.123456Z",
        "duration_ms": 1.5,
    }


def test_error_fields_and_pipeline_status() -> None:
    event = Event(
        "pipeline_completed",
        "etl",
        RUN,
        1,
        None,
        0,
        duration_ns=0,
        status="error",
        error="boom",
        error_type="ValueError",
        seq=9,
    )
    data = event.to_dict()
    assert data["parent_span_id"] is None
    assert (data["status"], data["error"], data["error_type"]) == ("error", "boom", "ValueError")


def test_sse_frame_carries_seq_as_id_and_is_framed_once() -> None:
    event = Event("task_started", "a", RUN, 1, 2, 0, seq=7)
    frame = event.sse
    assert frame.startswith(b"id: 7\ndata: {")
    assert frame.endswith(b"}\n\n")
    assert frame.count(b"\n") == 3
    assert event.sse is frame


@pytest.mark.parametrize(
    "name", ["line\nbreak", "cr\rlf\r\n", "nul\0", "data: x\n\nid: 99", "\ud800 lone", "é😀"]
)
def test_no_name_can_break_the_framing(name: str) -> None:
    frame = Event("task_started", name, RUN, 1, 2, 0, seq=1).sse
    lines = frame.split(b"\n")
    assert lines[0] == b"id: 1" and lines[1].startswith(b"data: ") and lines[2:] == [b"", b""]
    assert json.loads(lines[1][len(b"data: ") :].decode("utf-8"))["name"] == name


def test_encode_sse_refuses_multiline_data() -> None:
    with pytest.raises(ValueError):
        encode_sse("a\nb")
    assert encode_sse("{}") == b"data: {}\n\n"


def test_format_time_is_rfc3339_utc() -> None:
    assert format_time(0) == "1970-01-01T00:00:00Z"
    assert format_time(1_000_001_000) == "1970-01-01T00:00:01.000001Z"


def test_an_event_weighs_its_base_and_its_strings() -> None:
    from otelstream.events import DataEvent
    from otelstream.events._model import EVENT_BYTES

    big = "x" * 8_000
    assert Event("task_started", "t", RUN, 2, 1, 0).weight() == EVENT_BYTES
    plain = Event("task_started", "t", RUN, 2, 1, 0, attributes={"big": big, "n": 3})
    assert plain.weight() == EVENT_BYTES + len(big)
    listed = Event("task_started", "t", RUN, 2, 1, 0, attributes={"tags": ("ab", 1, "c")})
    assert listed.weight() == EVENT_BYTES + 3
    log = DataEvent("task_log", "t", RUN, 2, 0, {"message": big, "level": "INFO"})
    assert log.weight() == EVENT_BYTES + len(big) + len("INFO")
