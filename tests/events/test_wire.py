"""The wire codec: the one place that writes and reads frames, notices and run summaries."""

from __future__ import annotations

import json

from otelstream.events import PIPELINE_COMPLETED, Event, _wire
from otelstream.hubs._entries import Frame, Notice, SealedFrames, decode_frame

RUN = "0af7651916cd43dd8448eb211c80319c"


def test_an_event_read_back_from_its_frame_is_the_same_event() -> None:
    sent = Event(
        "task_error", "naïve \udcff", RUN, 2, 1, 1_700_000_000_123_456_000,
        duration_ns=1_500_000, error="boom\n", error_type="ValueError",
        attributes={"k": ["v", 1]}, seq=7,
    )  # fmt: skip
    received = decode_frame(Frame(7, sent.sse))
    assert received.sse == sent.sse
    assert received.to_dict() == json.loads(_wire.data_of(sent.sse))
    fields = ("type", "name", "run_id", "span_id", "parent_span_id", "time_ns", "duration_ns")
    for field in (*fields, "error", "error_type", "attributes", "seq"):
        assert getattr(received, field) == getattr(sent, field), field  # a lone surrogate too


def test_a_services_span_writes_service_last_on_either_path() -> None:
    """A span received over OTLP: the codec writes `service` after the common fields, the same
    bytes whether the event takes the plain path or the dict (an error, attributes)."""
    for fields in ({}, {"error": "boom", "error_type": "E", "attributes": {"k": 1}}):
        event = Event("task_completed", "GET /", RUN, 2, 1, 1_700_000_000_000_000_000,
                      duration_ns=2_000_000, seq=3, service='node "api"',
                      **fields)  # type: ignore[arg-type]  # fmt: skip
        data = _wire.data_of(event.sse)
        assert data == _wire.utf8(_wire.to_json(_wire.event_dict(event)))
        parsed = json.loads(data)
        assert list(parsed)[-1] == "service" and parsed["service"] == 'node "api"'
    plain = Event("task_started", "t", RUN, 2, 1, 0, seq=1)
    assert b"service" not in plain.sse


def test_the_final_check_reads_the_parsed_type_not_a_keys_position() -> None:
    named = Event("task_started", PIPELINE_COMPLETED, RUN, 2, 1, 0, seq=2)
    data = _wire.data_of(named.sse)
    assert b'"pipeline_completed"' in data and not _wire.ends_run(data)
    reordered = b'{"seq":3,"type":"pipeline_completed","run_id":"' + RUN.encode() + b'"}'
    assert _wire.ends_run(reordered) and _wire.is_final(_wire.parse(reordered))
    assert _wire.FINAL_TYPE == PIPELINE_COMPLETED


def test_a_notice_handed_out_and_framed_again_keeps_its_reason() -> None:
    data = _wire.notice("stream_overflow", RUN, 4, reason="evicted")
    frame = Notice(data).sse
    assert frame == _wire.notice_frame("stream_overflow", RUN, 4, reason="evicted")
    assert not frame.startswith(b"id:") and _wire.parse_frame(frame)["reason"] == "evicted"


def test_the_end_of_a_summary_is_its_tail_from_status_on() -> None:
    """The Redis hub splices the end into the summary stored at the start."""
    started = _wire.to_json(_wire.run_summary(RUN, "p", 1_000_000_000))
    ended = _wire.run_summary(RUN, "p", 1_000_000_000, "error", 2_000_000, "ValueError")
    head = started[: started.index(',"status":') + 1].encode()
    assert head + _wire.summary_end("error", 2_000_000, "ValueError") == _wire.utf8(
        _wire.to_json(ended)
    )


def test_a_sealed_run_hands_out_its_frames_one_by_one_or_in_slices() -> None:
    events = [Event("task_started", f"t{seq}", RUN, seq, 1, 0, seq=seq) for seq in range(1, 51)]
    sealed = SealedFrames(events, 50)
    assert len(sealed) == 50
    one_each = sealed.last(10)
    assert [e.seq for e in one_each] == list(range(41, 51))
    assert [e.sse for e in one_each] == [e.sse for e in events[40:]]
    chunks = sealed.last(50, chunk_bytes=1_000)
    assert b"".join(c.sse for c in chunks) == b"".join(e.sse for e in events)
    assert chunks[-1].seq == 50 and all(len(c.sse) <= 1_000 for c in chunks)
    assert [c.seq for c in sealed.last(3, chunk_bytes=1)] == [48, 49, 50]  # one at least
