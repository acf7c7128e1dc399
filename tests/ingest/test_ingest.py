"""The OTLP/HTTP receiver end to end: a real uvicorn, spans from a second process (Python's own
OTLP exporter, protobuf and JSON, gzip) and requests made by hand for the edge cases."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from otelstream import EventStreamProcessor
from otelstream.fastapi import create_router
from otelstream.testing import UvicornServer, read_events
from tests.conftest import ROOT, Gate, make_telemetry
from tests.routers import TIMEOUT, App, serve_app

TOKEN = "s3cret"
PROTOBUF = {"content-type": "application/x-protobuf", "authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def app() -> Iterator[App]:
    yield from serve_ingest(otlp_token=TOKEN)


def serve_ingest(**settings: Any) -> Iterator[App]:
    """The test app with its OTLP receiver on."""
    yield from serve_app(otlp_ingest=True, **settings)


def running(app: App) -> tuple[str, str]:
    """A run held open by its gate, and its root span's id."""
    run_id = app.run("gated")
    assert app.gate.reached.wait(10)
    root = app.client.get(f"/runs/{run_id}").json()["tree"]["span_id"]
    return run_id, root


def span(run_id: str, span_id: int, parent: int | str | None, name: str, **fields: Any) -> Span:
    parent_id = int(parent, 16) if isinstance(parent, str) else parent
    return Span(
        trace_id=bytes.fromhex(run_id),
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=b"" if parent_id is None else parent_id.to_bytes(8, "big"),
        name=name,
        start_time_unix_nano=fields.pop("start", 1_700_000_000_000_000_000 + span_id),
        end_time_unix_nano=fields.pop("end", 1_700_000_000_500_000_000 + span_id),
        **fields,
    )


def export(*spans: Span, service: str = "billing") -> bytes:
    resource = {"attributes": [KeyValue(key="service.name", value=AnyValue(string_value=service))]}
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
    )
    return request.SerializeToString()


def post(app: App, body: bytes, headers: dict[str, str] = PROTOBUF) -> httpx.Response:
    return app.client.post("/v1/traces", content=body, headers=headers)


def answer(response: httpx.Response) -> ExportTraceServiceResponse:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-protobuf"
    return ExportTraceServiceResponse.FromString(response.content)


def finish(app: App, run_id: str) -> list[dict[str, Any]]:
    app.gate.opened.set()
    return read_events(app.client, "GET", f"/runs/{run_id}/events")


def sender(app: App, run_id: str, root: str, encoding: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "tests/otlp_sender.py",
            app.url,
            f"00-{run_id}-{root}-01",
            encoding,
            TOKEN,
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def service_events(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """A service's span events by (type, name) (its log records carry a service too)."""
    return {
        (e["type"], e["name"]): e for e in events if e.get("service") and e["type"] != "task_log"
    }


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_spans_of_another_process_join_the_run_of_their_trace(app: App, encoding: str) -> None:
    run_id, root = running(app)
    sent = sender(app, run_id, root, encoding)
    if encoding == "protobuf":
        assert sent == {"result": "SUCCESS"}  # Python's own exporter, gzip
    else:
        assert sent == {"result": 200, "answer": {}}  # no partial_success: all taken
    events = finish(app, run_id)
    by_name = service_events(events)
    server = by_name[("task_started", "POST /charge")]
    assert server["parent_span_id"] == root and server["service"] == "billing"
    charge = by_name[("task_completed", "charge card")]
    assert charge["parent_span_id"] == server["span_id"] and charge["duration_ms"] >= 0
    failed = by_name[("task_error", "notify")]
    assert (failed["error"], failed["error_type"]) == ("mail server down", "ValueError")
    assert len(by_name) == 6  # three spans, each started and ended once
    assert events[-1]["type"] == "pipeline_completed"
    tree = app.client.get(f"/runs/{run_id}").json()["tree"]
    names = [child["name"] for child in tree["children"]]
    assert "POST /charge" in names


def test_unknown_traces_and_ended_runs_are_counted_not_stored(app: App) -> None:
    run_id, root = running(app)
    stranger = "1" * 32
    partial = answer(post(app, export(span(stranger, 7, None, "elsewhere")))).partial_success
    assert partial.rejected_spans == 1 and "not streamed" in partial.error_message
    events = finish(app, run_id)
    late = answer(post(app, export(span(run_id, 9, root, "too late")))).partial_success
    assert late.rejected_spans == 1 and "ended" in late.error_message
    assert all(e["name"] != "too late" for e in events)
    assert app.client.get(f"/runs/{stranger}").status_code == 404


def test_a_batch_sent_twice_streams_once(app: App) -> None:
    run_id, root = running(app)
    body = export(span(run_id, 11, root, "retried"))
    assert answer(post(app, body)) == ExportTraceServiceResponse()
    assert answer(post(app, body)) == ExportTraceServiceResponse()  # taken: already there
    events = finish(app, run_id)
    assert [e["type"] for e in events if e["name"] == "retried"] == [
        "task_started",
        "task_completed",
    ]


def test_bad_requests_get_the_answers_the_specification_asks_for(app: App) -> None:
    run_id, root = running(app)
    good = export(span(run_id, 21, root, "fine"))
    assert post(app, good[:-3]).status_code == 400  # truncated protobuf
    wrong = {**PROTOBUF, "content-type": "text/plain"}
    assert post(app, good, wrong).status_code == 415
    base64_ids = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "CvdlGRbNQ92ESOshHIAxnA==",
                                "spanId": "AAAAAAAAAAE=",
                                "name": "b64",
                            }
                        ]
                    }
                ]
            }
        ]
    }
    as_json = {**PROTOBUF, "content-type": "application/json"}
    refused = app.client.post("/v1/traces", json=base64_ids, headers=as_json)
    assert refused.status_code == 400 and "hex" in refused.json()["message"]
    assert post(app, good, {"content-type": "application/x-protobuf"}).status_code == 401
    wrong_token = {**PROTOBUF, "authorization": "Bearer nope"}
    assert post(app, good, wrong_token).status_code == 401
    assert post(app, b"x" * (17 * 1024 * 1024)).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length, as the JS exporter sends
        for _ in range(17):
            yield b"x" * (1024 * 1024)

    assert post(app, chunks()).status_code == 413  # type: ignore[arg-type]
    assert answer(post(app, good)) == ExportTraceServiceResponse()  # still serving
    finish(app, run_id)


def test_the_receiver_is_off_unless_asked_for() -> None:
    telemetry = make_telemetry()
    app = FastAPI()
    app.include_router(create_router(hub=telemetry.hub))
    with UvicornServer(app) as server:
        sent = httpx.post(f"{server.url}/v1/traces", content=b"", headers=PROTOBUF, timeout=TIMEOUT)
    assert sent.status_code == 404


def test_without_a_token_the_receiver_says_it_is_open(caplog: pytest.LogCaptureFixture) -> None:
    for client in serve_ingest():
        assert answer(post(client, export())) == ExportTraceServiceResponse()
    assert any(
        "OTLP receiver" in r.getMessage() and "open" in r.getMessage() for r in caplog.records
    )


def test_children_before_their_parents_wait_under_a_placeholder(app: App) -> None:
    run_id, root = running(app)
    assert answer(post(app, export(span(run_id, 32, 31, "query")))) == ExportTraceServiceResponse()
    waiting = app.client.get(f"/runs/{run_id}").json()["tree"]["children"]
    holder = next(child for child in waiting if child.get("placeholder"))
    assert holder["span_id"] == f"{31:016x}" and holder["name"] == "…"
    assert [kid["name"] for kid in holder["children"]] == ["query"]
    assert (
        answer(post(app, export(span(run_id, 31, root, "handler")))) == ExportTraceServiceResponse()
    )
    arrived = app.client.get(f"/runs/{run_id}").json()["tree"]["children"]
    assert not any(child.get("placeholder") for child in arrived)
    handler = next(child for child in arrived if child["name"] == "handler")
    assert [kid["name"] for kid in handler["children"]] == ["query"]
    events = finish(app, run_id)
    query = next(e for e in events if e["name"] == "query")
    assert query["parent_span_id"] == f"{31:016x}"  # streamed with its parent's id at once


@contextmanager
def serve_calling(
    linger: float, switched_on_by: str = "settings"
) -> Iterator[tuple[App, list[str]]]:
    """An app whose `calling` pipeline makes an HTTP call (a CLIENT span) and whose `quiet`
    pipeline makes none; the receiver on, the run's end lingering up to `linger` seconds.

    `switched_on_by`: where the receiver is turned on: the settings the hub and the user's own
    processor share (`OTELSTREAM_OTLP_INGEST`), or only the router's argument (the README's
    drop-in: the processor was built with no word of a receiver)."""
    by_settings = switched_on_by == "settings"
    telemetry = make_telemetry(otlp_ingest=by_settings, otlp_linger_seconds=linger)
    tracer, calls = telemetry.tracer, []

    def calling() -> None:
        with tracer.start_as_current_span("POST /charge", kind=SpanKind.CLIENT) as call:
            calls.append(f"{call.get_span_context().span_id:016x}")

    def quiet() -> None:
        with tracer.start_as_current_span("task:alone"):
            pass

    app = FastAPI()
    app.include_router(
        create_router(
            hub=telemetry.hub,
            pipelines={"calling": calling, "quiet": quiet},
            tracer_provider=telemetry.provider,
            otlp_ingest=None if by_settings else True,
        )
    )
    with UvicornServer(app) as server:
        client = App(telemetry, server, Gate())
        yield client, calls
        client.client.close()
    telemetry.provider.shutdown()


@pytest.mark.parametrize("switched_on_by", ["settings", "router"])
def test_a_runs_end_waits_for_the_service_it_called(switched_on_by: str) -> None:
    """One switch, wherever it is turned on, means the same everywhere (issue 29.2)."""
    with serve_calling(linger=30, switched_on_by=switched_on_by) as (app, calls):
        run_id = app.run("calling")
        seen: list[dict[str, Any]] = []

        def service_exports_later() -> None:  # as a batch processor does, after the call
            while not calls:
                time.sleep(0.01)
            time.sleep(0.5)
            post(
                app, export(span(run_id, 41, calls[0], "POST /charge", kind=Span.SPAN_KIND_SERVER))
            )

        service = threading.Thread(target=service_exports_later)
        service.start()
        seen = read_events(app.client, "GET", f"/runs/{run_id}/events")
        service.join()
        assert [(e["type"], e["name"]) for e in seen][-3:] == [
            ("task_started", "POST /charge"),
            ("task_completed", "POST /charge"),
            ("pipeline_completed", "calling"),
        ]
        assert seen[-2]["service"] == "billing"
        assert seen[-2]["parent_span_id"] == calls[0]


def test_runs_without_calls_and_calls_nobody_answers_are_not_held_long() -> None:
    with serve_calling(linger=30) as (app, _):
        quiet = read_events(app.client, "POST", "/run-workflow", json={"pipeline_name": "quiet"})
        assert quiet[-1]["type"] == "pipeline_completed"  # at once: the read times out in 10 s
    with serve_calling(linger=0.3) as (app, _):
        body = {"pipeline_name": "calling"}
        unanswered = read_events(app.client, "POST", "/run-workflow", json=body)
        assert unanswered[-1]["type"] == "pipeline_completed"  # after the linger time


def test_log_records_of_a_service_become_task_logs_under_their_span(app: App) -> None:
    run_id, root = running(app)
    assert (
        answer(
            post(app, export(span(run_id, 51, root, "POST /charge")))
        ).partial_success.rejected_spans
        == 0
    )

    def record(trace: str, span_id: int, severity: int, text: str) -> LogRecord:
        return LogRecord(
            time_unix_nano=1_700_000_000_100_000_000,
            severity_number=severity,  # type: ignore[arg-type]
            body=AnyValue(string_value=text),
            trace_id=bytes.fromhex(trace),
            span_id=span_id.to_bytes(8, "big"),
        )

    service = {"attributes": [KeyValue(key="service.name", value=AnyValue(string_value="billing"))]}
    logs = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=service,
                scope_logs=[
                    ScopeLogs(
                        scope=InstrumentationScope(name="billing.log"),
                        log_records=[
                            record(run_id, 51, 9, "card charged"),  # INFO
                            record(run_id, int(root, 16), 13, "slow"),  # in the local root
                            record(run_id, 51, 5, "wire details"),  # DEBUG: below the level
                            record("3" * 32, 51, 9, "elsewhere"),  # no such run
                        ],
                    )
                ],
            )
        ]
    )
    sent = app.client.post("/v1/logs", content=logs.SerializeToString(), headers=PROTOBUF)
    assert sent.status_code == 200
    partial = ExportLogsServiceResponse.FromString(sent.content).partial_success
    assert partial.rejected_log_records == 1
    events = finish(app, run_id)
    logged = [e for e in events if e["type"] == "task_log"]
    assert [(e["message"], e["level"], e["logger"], e["span_id"]) for e in logged] == [
        ("card charged", "INFO", "billing.log", f"{51:016x}"),
        ("slow", "WARN", "billing.log", root),
    ]
    # the service's lines say so: its service, and its span's name where this worker saw it
    assert [(e["service"], e["name"]) for e in logged] == [
        ("billing", "POST /charge"),
        ("billing", "billing.log"),
    ]


def test_a_span_with_no_parent_in_a_runs_trace_is_counted_not_dropped_in_silence(
    app: App,
) -> None:
    run_id, root = running(app)
    body = export(span(run_id, 61, None, "second root"), span(run_id, 62, root, "child"))
    partial = answer(post(app, body)).partial_success
    assert partial.rejected_spans == 1 and "no parent" in partial.error_message
    assert "parent's context" in partial.error_message  # what to do
    events = finish(app, run_id)
    assert "child" in [e["name"] for e in events]
    assert all(e["name"] != "second root" for e in events)


def test_the_commands_tree_puts_a_child_under_a_placeholder_until_its_parent_arrives() -> None:
    from rich.console import Console

    from otelstream.cli._view import RunView

    def drawn(view: RunView) -> str:
        console = Console(record=True, width=100, color_system=None)
        console.print(view)
        lines = console.export_text().splitlines()
        return "\n".join(re.sub(r"(\S)  .*$", r"\1", line) for line in lines)  # names only

    view = RunView("r" * 32)
    root, server, query = "a" * 16, "b" * 16, "c" * 16
    view.apply({"type": "pipeline_started", "name": "priced", "span_id": root})
    child = {"name": "query", "span_id": query, "parent_span_id": server, "service": "billing"}
    view.apply({"type": "task_started", **child})
    view.apply({"type": "task_completed", **child, "duration_ms": 1.0})
    assert drawn(view) == "priced\n└── …\n    └── query"
    parent = {"name": "POST /charge", "span_id": server, "parent_span_id": root}
    view.apply({"type": "task_started", **parent, "service": "billing"})
    assert drawn(view) == "priced\n└── POST /charge\n    └── query"
    assert "billing" in str(view._label(view.spans[server], 0.0))  # the service is shown
    # a record the service sent in the local root's span: its line says whose it is
    view.apply({"type": "task_log", "span_id": root, "message": "slow", "service": "billing"})
    view.apply({"type": "task_log", "span_id": server, "message": "ok", "service": "billing"})
    assert list(view.spans[root].logs) == [("INFO", "[billing] slow")]
    assert list(view.spans[server].logs) == [("INFO", "ok")]  # its own span says billing


def test_span_filters_hide_a_services_spans_and_their_children_move_up() -> None:
    for app in serve_ingest(span_exclude=("GET /health*",)):
        run_id, root = running(app)
        body = export(span(run_id, 71, root, "GET /health/db"), span(run_id, 72, 71, "ping"))
        assert answer(post(app, body)) == ExportTraceServiceResponse()
        events = finish(app, run_id)
        assert all(e["name"] != "GET /health/db" for e in events)
        ping = next(e for e in events if e["name"] == "ping")
        assert ping["parent_span_id"] == root  # its nearest shown ancestor


HOSTILE = "explode\x1b[2J\r\n\x1b]0;pwned\x07"
"""A service's span name that would clear a terminal, break a log line and set a title."""


def test_the_processors_span_filter_decides_for_the_services_spans_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`EventStreamProcessor(hub, span_filter=...)` shows a service's spans by the same callable
    as the process's own, though the processor is built after the router here; a filter that
    raises leaves its span out and says so, once, with the span's name shown inert."""

    def shows(span: ReadableSpan) -> bool:
        if span.name.startswith("explode"):
            raise RuntimeError("a bug in the app's filter")
        return not (span.attributes or {}).get("cache.hit")

    for app in serve_ingest():
        EventStreamProcessor(app.hub, span_filter=shows)
        run_id, root = running(app)
        hit = KeyValue(key="cache.hit", value=AnyValue(bool_value=True))
        body = export(
            span(run_id, 81, root, "GET /price", attributes=[hit]),
            span(run_id, 82, 81, "lookup"),
            span(run_id, 83, root, HOSTILE),
            span(run_id, 84, root, "GET /stock"),
        )
        assert answer(post(app, body)) == ExportTraceServiceResponse()
        events = finish(app, run_id)
        names = {e["name"] for e in events}
        assert "GET /price" not in names and HOSTILE not in names, names
        assert "GET /stock" in names
        lookup = next(e for e in events if e["name"] == "lookup")
        assert lookup["parent_span_id"] == root  # its nearest shown ancestor
    told = [r.getMessage() for r in caplog.records if "span_filter raised" in r.getMessage()]
    assert len(told) == 1 and "RuntimeError" in told[0], told
    # the span's name is the service's: in the log line, its control characters are inert
    assert repr(HOSTILE) in told[0] and not any(c in told[0] for c in "\x1b\r\n\x07"), told
