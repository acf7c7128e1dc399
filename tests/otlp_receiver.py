"""A real OTLP receiver of traces, logs and metrics on 127.0.0.1, over gRPC or HTTP, for
end-to-end export tests.

It stands in for the OpenTelemetry Collector, which cannot run here: the
exporters under test speak the real protocol to it (grpcio with the
`TraceService/Export` method, or `POST /v1/traces` with a protobuf
`ExportTraceServiceRequest`; `LogsService/Export` or `POST /v1/logs` for log
records; `MetricsService/Export` or `POST /v1/metrics` for metrics), and it keeps every span,
log record and metric data point it decodes.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

SPAN_KIND_SERVER = ProtoSpan.SpanKind.SPAN_KIND_SERVER


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, with ids as lowercase hex as in otelstream's events."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int


@dataclass(frozen=True)
class ReceivedLog:
    """One exported log record, ids as lowercase hex."""

    trace_id: str
    span_id: str
    body: Any
    severity_text: str
    attributes: dict[str, Any]
    event_name: str


@dataclass(frozen=True)
class ReceivedPoint:
    """One exported metric data point: a sum's or gauge's `value`, a histogram's `count`
    and `sum` (the other's fields None)."""

    metric: str
    unit: str
    scope: str
    attributes: dict[str, Any]
    value: float | None
    count: int | None
    sum: float | None


class OtlpReceiver:
    """Collects the spans of every export request; `spans()` and `wait_for()` read them."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        """As in `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` or `http/protobuf`."""
        self.endpoint = ""
        self.requests = 0
        self._spans: list[ReceivedSpan] = []
        self._logs: list[ReceivedLog] = []
        self._points: list[ReceivedPoint] = []
        self._changed = threading.Condition()

    def accept_logs(self, request: logs_service_pb2.ExportLogsServiceRequest) -> None:
        received = [
            ReceivedLog(
                record.trace_id.hex(),
                record.span_id.hex(),
                _value(record.body),
                record.severity_text,
                _attributes(record.attributes),
                record.event_name,
            )
            for resource_logs in request.resource_logs
            for scope_logs in resource_logs.scope_logs
            for record in scope_logs.log_records
        ]
        with self._changed:
            self._logs.extend(received)
            self._changed.notify_all()

    def accept_metrics(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        received = [
            _point(metric, scope_metrics.scope.name, point)
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            for point in getattr(metric, metric.WhichOneof("data") or "sum").data_points
        ]
        with self._changed:
            self._points.extend(received)
            self._changed.notify_all()

    def points(self, metric: str | None = None) -> list[ReceivedPoint]:
        """Every data point received (of `metric`), in the order they came."""
        with self._changed:
            return [p for p in self._points if metric is None or p.metric == metric]

    def logs(self, trace_id: str | None = None) -> list[ReceivedLog]:
        with self._changed:
            return [r for r in self._logs if trace_id is None or r.trace_id == trace_id]

    def accept(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        received = [
            _span(span, _attributes(resource_spans.resource.attributes))
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._changed:
            self.requests += 1
            self._spans.extend(received)
            self._changed.notify_all()

    def spans(self, trace_id: str | None = None) -> list[ReceivedSpan]:
        with self._changed:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 10.0
    ) -> list[ReceivedSpan]:
        """Every span so far, once `predicate` holds for them; AssertionError after `timeout`."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self._spans), timeout):
                raise AssertionError(f"spans never arrived; got {self._spans}")
            return list(self._spans)


def _span(span: ProtoSpan, resource: dict[str, Any]) -> ReceivedSpan:
    return ReceivedSpan(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() or None,
        name=span.name,
        kind=span.kind,
        attributes=_attributes(span.attributes),
        resource=resource,
        status_code=span.status.code,
    )


def _point(metric: Any, scope: str, point: Any) -> ReceivedPoint:
    histogram = metric.WhichOneof("data") in ("histogram", "exponential_histogram")
    value = None
    if not histogram:
        value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
    return ReceivedPoint(
        metric.name,
        metric.unit,
        scope,
        _attributes(point.attributes),
        value,
        point.count if histogram else None,
        point.sum if histogram else None,
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return None if kind is None else getattr(value, kind)


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.receiver.accept(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver

    def Export(
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: grpc.ServicerContext
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        self.receiver.accept_logs(request)
        return logs_service_pb2.ExportLogsServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver

    def Export(
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        context: grpc.ServicerContext,
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self.receiver.accept_metrics(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


@contextmanager
def grpc_receiver() -> Iterator[OtlpReceiver]:
    """OTLP/gRPC on a free port of 127.0.0.1; `endpoint` is `http://127.0.0.1:PORT`."""
    receiver = OtlpReceiver("grpc")
    with ThreadPoolExecutor(4, thread_name_prefix="otlp-grpc") as pool:
        server = grpc.server(pool)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(receiver), server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsService(receiver), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _MetricsService(receiver), server
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        receiver.endpoint = f"http://127.0.0.1:{port}"
        try:
            yield receiver
        finally:
            server.stop(grace=None).wait(5)


@contextmanager
def http_receiver() -> Iterator[OtlpReceiver]:
    """OTLP/HTTP (protobuf) on a free port of 127.0.0.1; the exporter posts to `/v1/traces`."""
    receiver = OtlpReceiver("http/protobuf")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            if "protobuf" not in self.headers.get("Content-Type", ""):
                self.send_error(415)
                return
            if self.path == "/v1/logs":
                logs = logs_service_pb2.ExportLogsServiceRequest()
                logs.ParseFromString(body)
                receiver.accept_logs(logs)
                self._answer(logs_service_pb2.ExportLogsServiceResponse().SerializeToString())
                return
            if self.path == "/v1/metrics":
                metrics = metrics_service_pb2.ExportMetricsServiceRequest()
                metrics.ParseFromString(body)
                receiver.accept_metrics(metrics)
                answer = metrics_service_pb2.ExportMetricsServiceResponse()
                self._answer(answer.SerializeToString())
                return
            if self.path != "/v1/traces":
                self._answer(None)
                return
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            receiver.accept(request)
            self._answer(trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

        def _answer(self, body: bytes | None) -> None:
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="otlp-http", daemon=True)
    thread.start()
    receiver.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


RECEIVERS = {"grpc": grpc_receiver, "http/protobuf": http_receiver}
"""OTLP protocol (as in `OTEL_EXPORTER_OTLP_PROTOCOL`) -> the receiver that speaks it."""
