"""logfire as a drop-in: its spans stream with their rendered names; its logs are task_log events.

`logfire.configure` sets the global tracer provider, so each check runs logfire
in a process of its own (tests/apps/), never in the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from otelstream.testing import read_events
from tests.conftest import ROOT, app_process, shape
from tests.otlp_receiver import http_receiver


def test_logfire_configure_with_the_processor_is_a_drop_in() -> None:
    done = subprocess.run(
        [sys.executable, "tests/apps/logfire_drop_in.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    results = json.loads(done.stdout)

    # `logfire.span("task:{name}", name="extract")`: the rendered name, not the template
    assert shape(results["rendered"]) == [
        ("pipeline_started", "rendered"),
        ("task_started", "extract"),
        ("task_completed", "extract"),
        ("task_started", "load"),
        ("task_completed", "load"),
        ("pipeline_completed", "rendered"),
    ]
    root = results["rendered"][0]["span_id"]
    assert [e["parent_span_id"] for e in results["rendered"][1:-1]] == [root] * 4

    # log records (info, an error logged inside the task, a warning between tasks) are not
    # tasks but task_log events of the span they were logged in, and a logged error does not
    # fail the task whose span ended normally
    logs = results["logs"]
    assert shape(logs) == [
        ("pipeline_started", "logs"),
        ("task_started", "compute"),
        ("task_log", "logfire"),
        ("task_log", "logfire"),
        ("task_completed", "compute"),
        ("task_log", "logfire"),
        ("pipeline_completed", "logs"),
    ]
    assert [(e["level"], e["message"], e["span_id"]) for e in logs if e["type"] == "task_log"] == [
        ("INFO", "progress 1/2", logs[1]["span_id"]),
        ("ERROR", "row 7 is malformed", logs[1]["span_id"]),
        ("WARN", "between tasks", logs[0]["span_id"]),
    ]
    assert "error" not in logs[4] and logs[6]["status"] == "success"

    # a task span that fails is a task_error, and its run ends in error
    failing = results["failing"]
    assert shape(failing)[-2:] == [("task_error", "validate"), ("pipeline_completed", "failing")]
    assert (failing[-2]["error"], failing[-2]["error_type"]) == ("row 7 is malformed", "ValueError")
    assert (failing[-1]["status"], failing[-1]["error"]) == ("error", "row 7 is malformed")

    # a logfire span outside any run published nothing
    assert results["hub"] == [{"dropped_events": 0}]


def test_the_logfire_example_streams_and_exports() -> None:
    with http_receiver() as receiver:
        with app_process(
            "tests.apps.logfire_app:app", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint
        ) as url:
            with httpx.Client(timeout=10) as client:
                ok = read_events(
                    client,
                    "POST",
                    f"{url}/run-workflow",
                    json={"pipeline_name": "logfire", "parameters": {"seconds": 0}},
                )
                failed = read_events(
                    client,
                    "POST",
                    f"{url}/run-workflow",
                    json={
                        "pipeline_name": "logfire",
                        "parameters": {"seconds": 0, "rows": 0, "fail": True},
                    },
                )
        # the app has exited: its lifespan flushed logfire's exporter
        (read,) = [e for e in ok if e["type"] == "task_log"]
        assert (read["message"], read["span_id"]) == ("read 5 rows", ok[1]["span_id"])
        assert [e["level"] for e in failed if e["type"] == "task_log"][-1] == "ERROR"
        ok = [e for e in ok if e["type"] != "task_log"]
        failed = [e for e in failed if e["type"] != "task_log"]
        assert shape(ok) == [
            ("pipeline_started", "logfire"),
            ("task_started", "ingest"),
            ("task_completed", "ingest"),
            ("task_started", "score"),
            ("task_completed", "score"),
            ("task_started", "publish"),
            ("task_completed", "publish"),
            ("pipeline_completed", "logfire"),
        ]
        # `score` logged an error (no rows) and completed; `publish` raised
        assert shape(failed)[3:] == [
            ("task_started", "score"),
            ("task_completed", "score"),
            ("task_started", "publish"),
            ("task_error", "publish"),
            ("pipeline_completed", "logfire"),
        ]
        assert failed[-1]["status"] == "error"
        assert failed[-1]["error"] == "could not publish score 0.0"

        run_id = ok[0]["run_id"]
        exported = receiver.spans(run_id)
        by_id = {span.span_id: span for span in exported}
        for event in ok[1:-1]:
            span = by_id[event["span_id"]]
            assert (span.name, span.attributes["logfire.msg"]) == (
                "task:{name}",
                f"task:{event['name']}",
            )
            assert span.parent_span_id == event["parent_span_id"]
        logs = [s for s in exported if s.attributes.get("logfire.span_type") == "log"]
        assert [s.attributes["logfire.msg"] for s in logs] == ["read 5 rows"]
        assert by_id[logs[0].parent_span_id].attributes["logfire.msg"] == "task:ingest"
        pipeline = by_id[ok[0]["span_id"]]
        assert pipeline.name == "pipeline:logfire"
        assert by_id[pipeline.parent_span_id].name == "POST /run-workflow"
