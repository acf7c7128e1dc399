"""The runs API's answer models hold what the codec writes: checked against the one
declaration of an event's fields (`otelstream.events._fields`) and the codec's run summary."""

from __future__ import annotations

import typing

from otelstream._server.models import RunStatus, RunSummary
from otelstream.events import JSON_SCHEMA, _wire
from otelstream.events._fields import RUN_STATUSES


def test_a_run_summary_answer_has_the_codecs_fields() -> None:
    written = _wire.run_summary("a" * 32, "p", 0, "error", 1_000, "E", errors_logged=1)
    assert set(RunSummary.model_fields) == set(written)
    assert RunSummary.model_validate(written).model_dump() == written
    # the runs stream's events carry the same summary: every field is in the event's schema
    assert set(written) <= set(JSON_SCHEMA["properties"])


def test_a_runs_status_is_one_of_the_declared_statuses() -> None:
    assert set(typing.get_args(RunStatus)) == set(RUN_STATUSES)
    assert set(JSON_SCHEMA["properties"]["status"]["enum"]) == set(RUN_STATUSES)
