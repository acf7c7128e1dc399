"""The log records a run streams reach an OTLP receiver too, as the same records, in the same spans.

The example app runs as users run it (uvicorn in its own process, configured by
OTEL_* variables, `OTEL_LOGS_EXPORTER=otlp`); a real OTLP receiver on 127.0.0.1
stands in for the Collector. Records are read after the app has exited, so its
lifespan's `telemetry.shutdown()` must have flushed them.
"""

from __future__ import annotations

import httpx
import pytest

from otelstream.testing import read_events
from tests.conftest import app_process
from tests.otlp_receiver import RECEIVERS

INGEST = {"pipeline_name": "ingest", "parameters": {"files": 3, "seconds": 0.01}}


@pytest.mark.parametrize("protocol", sorted(RECEIVERS))
def test_streamed_log_records_and_progress_are_exported(protocol: str) -> None:
    with RECEIVERS[protocol]() as receiver:
        with app_process(
            "examples.fastapi-telemetry.main:app",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_LOGS_EXPORTER="otlp",
        ) as url:
            with httpx.Client(timeout=10) as client:
                events = read_events(client, "POST", f"{url}/run-workflow", json=INGEST)
        run_id = events[0]["run_id"]
        logs = [e for e in events if e["type"] == "task_log"]
        assert [e["message"] for e in logs] == [
            "reading part-001.csv",
            "reading part-002.csv",
            "reading part-003.csv",
            "indexed 3 files",
        ]
        progress = [e for e in events if e["type"] == "task_progress"]
        assert progress[-1]["done"] == progress[-1]["total"] == 3

        exported = receiver.logs(run_id)
        by_body = {(r.body, r.span_id) for r in exported if not r.event_name}
        assert {(e["message"], e["span_id"]) for e in logs} <= by_body
        records = [r for r in exported if r.event_name == "otelstream.progress"]
        assert [r.attributes["otelstream.progress.done"] for r in records] == [
            e["done"] for e in progress
        ]
        assert {r.span_id for r in records} == {e["span_id"] for e in progress}
