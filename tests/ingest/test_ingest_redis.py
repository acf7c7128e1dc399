"""The OTLP receiver with the Redis hub: two worker processes of the example app; spans sent to
one worker stream on both, and a Redis that is down is a 503 with Retry-After, not a 500."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otelstream.testing import iter_sse, read_events
from tests.conftest import workers_on
from tests.ingest.test_ingest import export, span
from tests.redis_server import RedisServer

APP = "examples.fastapi-telemetry.main:app"
PROTOBUF = {"content-type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def two_workers(redis: RedisServer) -> Iterator[list[httpx.Client]]:
    """Two workers for the module's tests (each run its own): the outage test goes last."""
    with workers_on(redis.url, app=APP, OTELSTREAM_OTLP_INGEST="true") as clients:
        yield clients


def test_spans_received_by_one_worker_stream_on_the_other(
    two_workers: list[httpx.Client],
) -> None:
    a, b = two_workers
    body = {"pipeline_name": "example", "parameters": {"seconds": 1.0}}
    run_id = a.post("/runs", json=body).json()["run_id"]
    stream = iter_sse(a, "GET", f"/runs/{run_id}/events")
    first = json.loads(next(stream).data)
    assert first["type"] == "pipeline_started"
    root = first["span_id"]
    sent = b.post(
        "/v1/traces",
        content=export(span(run_id, 5, root, "GET /price"), service="pricing"),
        headers=PROTOBUF,
    )
    assert sent.status_code == 200
    assert ExportTraceServiceResponse.FromString(sent.content) == ExportTraceServiceResponse()
    seen = [first] + [json.loads(message.data) for message in stream]
    priced = [e for e in seen if e["name"] == "GET /price"]
    assert [(e["type"], e["service"], e["parent_span_id"]) for e in priced] == [
        ("task_started", "pricing", root),
        ("task_completed", "pricing", root),
    ]
    assert seen.index(priced[-1]) < len(seen) - 1  # before pipeline_completed
    again = read_events(b, "GET", f"/runs/{run_id}/events")  # B's stream: the same events
    assert [e["seq"] for e in again] == [e["seq"] for e in seen]
    tree = b.get(f"/runs/{run_id}").json()["tree"]
    assert "GET /price" in [child["name"] for child in tree["children"]]


def test_a_batch_sent_again_to_the_other_worker_streams_once(
    two_workers: list[httpx.Client],
) -> None:
    """An exporter's retry may reach another worker: the hub decides what is new, once."""
    a, b = two_workers
    body = {"pipeline_name": "example", "parameters": {"seconds": 1.0}}
    run_id = a.post("/runs", json=body).json()["run_id"]
    stream = iter_sse(a, "GET", f"/runs/{run_id}/events")
    first = json.loads(next(stream).data)
    root = first["span_id"]
    batch = export(span(run_id, 5, root, "GET /price"), span(run_id, 6, root, "GET /tax"))
    for worker in (a, b, a):
        sent = worker.post("/v1/traces", content=batch, headers=PROTOBUF)
        assert sent.status_code == 200, sent.text
    seen = [first] + [json.loads(message.data) for message in stream]
    received = sorted(
        (e["name"], e["type"]) for e in seen if e["name"] in ("GET /price", "GET /tax")
    )
    assert received == [
        ("GET /price", "task_completed"),
        ("GET /price", "task_started"),
        ("GET /tax", "task_completed"),
        ("GET /tax", "task_started"),
    ]


def test_a_services_log_records_and_orphan_spans_on_the_redis_hub(
    two_workers: tuple[httpx.Client, httpx.Client],
) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
        ExportLogsServiceResponse,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

    a, b = two_workers
    body = {"pipeline_name": "example", "parameters": {"seconds": 1.0}}
    run_id = a.post("/runs", json=body).json()["run_id"]
    stream = iter_sse(a, "GET", f"/runs/{run_id}/events")
    first = json.loads(next(stream).data)
    root = first["span_id"]
    spans = export(span(run_id, 5, root, "GET /price"), span(run_id, 6, None, "a second root"))
    sent = b.post("/v1/traces", content=spans, headers=PROTOBUF)
    partial = ExportTraceServiceResponse.FromString(sent.content).partial_success
    assert partial.rejected_spans == 1 and "no parent" in partial.error_message
    service = [KeyValue(key="service.name", value=AnyValue(string_value="pricing"))]
    record = LogRecord(
        time_unix_nano=1_700_000_000_100_000_000,
        severity_number=9,  # type: ignore[arg-type]
        body=AnyValue(string_value="priced"),
        trace_id=bytes.fromhex(run_id),
        span_id=(5).to_bytes(8, "big"),
    )
    logs = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource={"attributes": service},
                scope_logs=[
                    ScopeLogs(scope=InstrumentationScope(name="pricing.log"), log_records=[record])
                ],
            )
        ]
    )
    sent = b.post("/v1/logs", content=logs.SerializeToString(), headers=PROTOBUF)
    assert ExportLogsServiceResponse.FromString(sent.content) == ExportLogsServiceResponse()
    seen = [first] + [json.loads(message.data) for message in stream]
    logged = [e for e in seen if e["type"] == "task_log" and e.get("logger") == "pricing.log"]
    assert [(e["message"], e["service"], e["name"], e["span_id"]) for e in logged] == [
        ("priced", "pricing", "GET /price", f"{5:016x}")
    ]
    assert all(e["name"] != "a second root" for e in seen)


def test_a_redis_that_is_down_is_a_503_the_exporter_retries(
    redis: RedisServer, two_workers: list[httpx.Client]
) -> None:
    _, b = two_workers
    redis.kill()
    try:
        deadline = time.monotonic() + 10
        while True:
            refused = b.post(
                "/v1/traces", content=export(span("2" * 32, 5, 1, "x")), headers=PROTOBUF
            )
            if refused.status_code == 503 or time.monotonic() > deadline:
                break
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) >= 1
    finally:
        redis.start()
