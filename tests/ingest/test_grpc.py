"""The OTLP/gRPC receiver end to end: a real uvicorn whose lifespan serves gRPC too; a Python
service under `opentelemetry-instrument` (the distro's defaults: OTLP over gRPC) in a second
process, and calls made by hand with grpcio for the status codes the specification asks for."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from fastapi import FastAPI
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from pydantic import ValidationError

from otelstream import Settings
from otelstream.fastapi import create_router
from otelstream.testing import free_port
from tests.conftest import ROOT, make_telemetry
from tests.ingest.test_ingest import (
    TOKEN,
    answer,
    export,
    finish,
    post,
    running,
    service_events,
    span,
)
from tests.routers import App, serve_app

TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
BEARER = (("authorization", f"Bearer {TOKEN}"),)


@dataclass
class Served:
    app: App
    channel: grpc.Channel
    port: int

    def call(
        self, body: bytes, metadata: tuple[tuple[str, str], ...] = BEARER, **options: Any
    ) -> bytes:
        send = self.channel.unary_unary(TRACES)
        answered: bytes = send(body, metadata=metadata, timeout=10, **options)
        return answered

    def refused(self, body: bytes, **options: Any) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as refused:
            self.call(body, **options)
        return refused.value


def serve_grpc(**settings: Any) -> Iterator[Served]:
    """The test app (`serve_app`) with both receivers on, and a channel to its gRPC port."""
    port, http_port = free_port(), free_port()
    while http_port == port:  # two picks may meet; the gRPC port is bound first, by the lifespan
        http_port = free_port()
    endpoint = f"127.0.0.1:{port}"
    for app in serve_app(otlp_ingest=True, otlp_grpc_endpoint=endpoint, port=http_port, **settings):
        with grpc.insecure_channel(endpoint) as channel:
            yield Served(app, channel, port)


@pytest.fixture
def served() -> Iterator[Served]:
    yield from serve_grpc(otlp_token=TOKEN, otlp_grpc_max_message_bytes=64 * 1024)


def instrumented_service(port: int, traceparent: str) -> subprocess.CompletedProcess[str]:
    """tests/apps/grpc_service.py under `opentelemetry-instrument`, configured only by the
    environment a user would set: no protocol (the distro's default is gRPC), gzip, the token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTELSTREAM_"))}
    env.update(
        OTEL_SERVICE_NAME="billing",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{TOKEN}",
        OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
        OTEL_METRICS_EXPORTER="none",  # otelstream takes traces and logs
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
    )
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    return subprocess.run(
        [str(instrument), sys.executable, "tests/apps/grpc_service.py", traceparent],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=40,
    )


def test_a_python_service_under_opentelemetry_instrument_streams_over_grpc(
    served: Served,
) -> None:
    app = served.app
    run_id, root = running(app)
    done = instrumented_service(served.port, f"00-{run_id}-{root}-01")
    assert done.returncode == 0, done.stderr
    assert "Failed to export" not in done.stderr, done.stderr
    events = finish(app, run_id)
    by_name = service_events(events)
    server = by_name[("task_started", "POST /charge")]
    assert server["parent_span_id"] == root and server["service"] == "billing"
    charge = by_name[("task_completed", "charge card")]
    assert charge["parent_span_id"] == server["span_id"]
    failed = by_name[("task_error", "notify")]
    assert (failed["error"], failed["error_type"]) == ("mail server down", "ValueError")
    assert len(by_name) == 6  # three spans, each started and ended once
    logged = [e for e in events if e["type"] == "task_log"]
    assert [(e["message"], e["level"], e["span_id"], e["service"]) for e in logged] == [
        ("card declined once, retried", "WARN", charge["span_id"], "billing")
    ]
    assert events[-1]["type"] == "pipeline_completed"


def test_grpc_answers_like_http_partial_success_and_one_copy_across_both(served: Served) -> None:
    app = served.app
    run_id, root = running(app)
    body = export(span(run_id, 11, root, "retried"))
    assert ExportTraceServiceResponse.FromString(served.call(body)) == (
        ExportTraceServiceResponse()
    )
    compressed = served.call(body, compression=grpc.Compression.Gzip)  # sent again, gzip
    assert ExportTraceServiceResponse.FromString(compressed) == ExportTraceServiceResponse()
    assert answer(post(app, body)) == ExportTraceServiceResponse()  # and over HTTP: one core
    stranger = ExportTraceServiceResponse.FromString(served.call(export(span("1" * 32, 7, 1, "x"))))
    assert stranger.partial_success.rejected_spans == 1
    assert "not streamed" in stranger.partial_success.error_message
    logs = served.channel.unary_unary(LOGS)(
        ExportLogsServiceRequest().SerializeToString(), metadata=BEARER, timeout=10
    )
    assert ExportLogsServiceResponse.FromString(logs) == ExportLogsServiceResponse()
    events = finish(app, run_id)
    assert [e["type"] for e in events if e["name"] == "retried"] == [
        "task_started",
        "task_completed",
    ]


def test_bad_calls_get_the_status_codes_the_specification_asks_for(served: Served) -> None:
    app = served.app
    run_id, root = running(app)
    good = export(span(run_id, 21, root, "fine"))
    truncated = served.refused(good[:-3])
    assert truncated.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid ExportTraceServiceRequest" in (truncated.details() or "")
    assert served.refused(good, metadata=()).code() == grpc.StatusCode.UNAUTHENTICATED
    wrong = (("authorization", "Bearer nope"),)
    assert served.refused(good, metadata=wrong).code() == grpc.StatusCode.UNAUTHENTICATED
    large = export(span(run_id, 22, root, "x" * (70 * 1024)))
    assert served.refused(large).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # small on the wire, over the bound once unzipped: gRPC's own check, before the handler
    zipped = served.refused(large, compression=grpc.Compression.Gzip)
    assert zipped.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(gzip.compress(large)) < 64 * 1024
    assert ExportTraceServiceResponse.FromString(served.call(good)) == (
        ExportTraceServiceResponse()
    )  # still serving
    finish(app, run_id)


def test_a_hub_that_is_down_is_unavailable_with_the_delay_to_retry_after(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otelstream.hubs import HubUnavailable

    async def down(run_id: str) -> None:
        raise HubUnavailable("the hub cannot be reached", retry_after=3)

    monkeypatch.setattr(served.app.hub, "position", down)
    refused = served.refused(export(span("2" * 32, 5, 1, "x")))
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    trailing = dict(refused.trailing_metadata() or ())  # type: ignore[attr-defined]
    status = status_pb2.Status.FromString(trailing["grpc-status-details-bin"])
    info = error_details_pb2.RetryInfo()
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert status.details[0].Unpack(info) and info.retry_delay.seconds == 3
    python_sdk = error_details_pb2.RetryInfo.FromString(trailing["google.rpc.retryinfo-bin"])
    assert python_sdk.retry_delay.seconds == 3


def test_the_grpc_receiver_stops_with_the_app() -> None:
    for served in serve_grpc():
        assert served.call(export(), metadata=()) == b""
        port = served.port
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.RpcError) as gone:
            channel.unary_unary(TRACES)(export(), timeout=5)
    assert gone.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_endpoint_setting_takes_the_collectors_spelling() -> None:
    assert Settings(otlp_grpc_endpoint="0.0.0.0:4317").otlp_grpc_endpoint == "0.0.0.0:4317"
    assert Settings(otlp_grpc_endpoint="[::]:4317").otlp_receiving
    assert Settings(otlp_grpc_endpoint="").otlp_grpc_endpoint is None
    assert not Settings().otlp_receiving
    for wrong in ("4317", "http://0.0.0.0:4317", "host:port", ":4317"):
        with pytest.raises(ValidationError):
            Settings(otlp_grpc_endpoint=wrong)


def test_an_endpoint_that_cannot_be_bound_stops_the_start() -> None:
    telemetry = make_telemetry()
    router = create_router(
        hub=telemetry.hub, otlp_grpc_endpoint="192.0.2.1:4317", graceful_shutdown=False
    )

    async def start() -> None:
        async with router.lifespan_context(FastAPI()):
            raise AssertionError("started on an address this machine does not have")

    with pytest.raises(RuntimeError, match=r"cannot listen on 192\.0\.2\.1:4317"):
        asyncio.run(start())


def test_a_call_under_way_at_shutdown_is_cut_after_the_grace() -> None:
    """The app's stop is bounded: a call stuck on the hub is cancelled after
    `otlp_grpc_grace_seconds`, not awaited."""
    outcome: list[grpc.StatusCode] = []
    stuck = threading.Event()

    async def never(run_id: str) -> None:
        stuck.set()
        await asyncio.Event().wait()

    with contextmanager(serve_grpc)(otlp_grpc_grace_seconds=0.2) as served:
        served.app.hub.position = never  # type: ignore[method-assign]

        def call() -> None:
            try:
                served.call(export(span("4" * 32, 5, 1, "x")), metadata=())
            except grpc.RpcError as error:
                outcome.append(error.code())

        caller = threading.Thread(target=call)
        caller.start()
        assert stuck.wait(10)
    caller.join(10)
    assert not caller.is_alive()
    assert outcome == [grpc.StatusCode.CANCELLED]  # retryable, as the specification says


def test_metrics_are_refused_with_what_to_do(served: Served) -> None:
    send = served.channel.unary_unary(
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
    )
    with pytest.raises(grpc.RpcError) as refused:
        send(b"", metadata=BEARER, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "OTEL_METRICS_EXPORTER=none" in (refused.value.details() or "")
