"""The fields of an event are declared once (`otelstream.events._fields.FIELDS`): what is not
derived from the table is checked against it here, so a field cannot be added in one place
and forgotten in another."""

from __future__ import annotations

import inspect
import json

import jsonschema
import pytest

from otelstream.events import JSON_SCHEMA, DataEvent, Event, _wire
from otelstream.events._fields import ATTRIBUTES, BASE_FIELDS, FIELDS, KIND_FIELDS, RUN_STATUSES
from otelstream.events._notices import NOTICE_TYPES

RUN = "0af7651916cd43dd8448eb211c80319c"
KEYS = [field.key for field in FIELDS]


def every_field() -> Event:
    """An event with every field set (so every one is on the wire)."""
    return Event(
        "pipeline_completed", "nightly", RUN, 0xB7AD6B7169203331, 0x00F067AA0BA902B7,
        1_700_000_000_123_456_000, duration_ns=1_500_000, status="error", error="boom",
        error_type="ValueError", attributes={"rows": 3}, seq=9, errors_logged=2,
        service="pricing", expected_ns=1_200_000, expected_p90_ns=1_400_000,
    )  # fmt: skip


def test_the_event_holds_each_field_in_a_slot_its_constructor_takes() -> None:
    assert Event.__slots__ == ("_sse", *ATTRIBUTES)
    parameters = list(inspect.signature(Event.__init__).parameters)[1:]
    assert sorted(parameters) == sorted(ATTRIBUTES)
    assert len(set(KEYS)) == len(KEYS) and set(KEYS) == BASE_FIELDS


def test_the_codec_writes_every_field_in_the_tables_order() -> None:
    event = every_field()
    assert list(event.to_dict()) == KEYS
    assert list(json.loads(_wire.data_of(event.sse))) == KEYS


@pytest.mark.parametrize("duration_ns", [None, 0, 2_000_000])
@pytest.mark.parametrize("parent", [None, 1])
@pytest.mark.parametrize("service", [None, 'node "api"'])
def test_the_fast_path_writes_what_the_dict_path_writes(
    duration_ns: int | None, parent: int | None, service: str | None
) -> None:
    event = Event("task_completed", "naïve \u2028", RUN, 2, parent, 1_700_000_000_000_000_000,
                  duration_ns=duration_ns, seq=3, service=service)  # fmt: skip
    plain = _wire.plain_json(event)
    assert plain is not None
    assert plain == _wire.to_json(_wire.event_dict(event))


def test_every_field_reads_back_as_it_was_written() -> None:
    sent = every_field()
    read = Event(**_wire.event_fields(json.loads(_wire.data_of(sent.sse))))
    for attribute in ATTRIBUTES:
        assert getattr(read, attribute) == getattr(sent, attribute), attribute
    assert read.sse == sent.sse


def test_the_schema_is_the_tables_and_the_written_events_match_it() -> None:
    properties = JSON_SCHEMA["properties"]
    for field in FIELDS:
        if field.key != "type":
            assert properties[field.key] == field.schema, field.key
    assert set(properties) == BASE_FIELDS | set(KIND_FIELDS)
    assert properties["status"]["enum"] == list(RUN_STATUSES)
    assert set(properties["type"]["enum"]) >= NOTICE_TYPES
    jsonschema.validate(every_field().to_dict(), JSON_SCHEMA)
    data = {"level": "INFO", "message": "m", "logger": "app"}
    log = DataEvent("task_log", "app", RUN, 2, 0, data, seq=1)
    jsonschema.validate(log.to_dict(), JSON_SCHEMA)
    notice = _wire.notice("stream_overflow", RUN, 4)
    summary = _wire.run_summary(RUN, "p", 0, "error", 1_000, "E", errors_logged=1)
    for written in (log.to_dict(), notice, summary):
        assert set(written) <= set(properties), written
