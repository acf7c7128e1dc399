"""Control notices: one shape for every way a stream ends early, shared with the client."""

from __future__ import annotations

import json

import pytest

from otelstream.client import _resume as _client_common
from otelstream.events import JSON_SCHEMA, _notices
from otelstream.events._notices import NOTICE_TYPES
from otelstream.events._wire import notice_frame

RUN = "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize("type_", sorted(NOTICE_TYPES))
def test_every_notice_has_one_shape_and_no_id(type_: str) -> None:
    frame = notice_frame(type_, RUN, 41)
    assert frame.startswith(b"data: {") and b"id:" not in frame and frame.endswith(b"\n\n")
    assert frame.count(b"\n") == 2  # one data line: nothing can break the framing
    data = json.loads(frame[len(b"data: ") :])
    assert set(data) == {"type", "run_id", "last_seq", "reason", "message"}
    assert (data["type"], data["run_id"], data["last_seq"]) == (type_, RUN, 41)
    assert "Last-Event-ID" in data["message"] or type_ == "events_lost"


def test_a_notice_carries_its_reason_and_message() -> None:
    frame = notice_frame("events_lost", RUN, 3, message="Redis is unavailable\nforged")
    data = json.loads(frame[len(b"data: ") :])
    assert data["message"] == "Redis is unavailable\nforged"  # escaped by JSON, one line
    assert data["reason"] == "events_lost"


def test_unknown_types_are_refused() -> None:
    with pytest.raises(ValueError):
        notice_frame("task_started", RUN, 1)


def test_the_schema_and_the_client_know_every_notice() -> None:

    assert set(JSON_SCHEMA["properties"]["type"]["enum"]) >= NOTICE_TYPES

    assert _client_common.NOTICE_TYPES is _notices.NOTICE_TYPES
