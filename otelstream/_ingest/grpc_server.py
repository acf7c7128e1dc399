"""The OTLP/gRPC front end: the collector's port 4317, on the app's own event loop.

Python's SDK exports over gRPC by default, so a service started under
`opentelemetry-instrument` reaches otelstream here. The requests go through the
very core the HTTP receiver uses (`OtlpReceiver.authorize` and `.accept`: the same
routing, projection, allowlist, redaction, de-duplication and bounds); only the
transport differs. Errors carry the codes the OTLP specification gives gRPC, so
exporters retry or drop correctly: UNAUTHENTICATED without the token,
INVALID_ARGUMENT for what does not decode, RESOURCE_EXHAUSTED past
`otlp_grpc_max_message_bytes` (gRPC's own check, gzip included), UNAVAILABLE with
a `RetryInfo` when the hub cannot be reached.

The services are the official ones (their names from `opentelemetry-proto`'s
descriptors), registered with a handler that takes the raw bytes: the generated
`add_*Servicer_to_server` decodes before the handler runs and answers UNKNOWN to a
body that does not decode, where the specification asks INVALID_ARGUMENT.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otelstream._ingest.body import PROTOBUF, IngestError, parse
from otelstream._ingest.receiver import OtlpReceiver
from otelstream.settings import Settings

logger = logging.getLogger("otelstream.ingest")

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
_Request = type[
    trace_service_pb2.ExportTraceServiceRequest | logs_service_pb2.ExportLogsServiceRequest
]
_Handler = Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], Awaitable[bytes]]


class GrpcReceiver:
    """A `grpc.aio` server for the traces and logs services, started and stopped by the
    router's lifespan (so on the loop that serves the app, under any ASGI server)."""

    def __init__(self, core: OtlpReceiver, endpoint: str, settings: Settings) -> None:
        self.core = core
        self.endpoint = endpoint
        self.max_bytes = settings.otlp_grpc_max_message_bytes
        self.grace = settings.otlp_grpc_grace_seconds
        self.server: grpc.aio.Server | None = None
        self.port: int | None = None

    async def start(self) -> None:
        """Binds the endpoint (raises when it cannot: the app does not start half-deaf)."""
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self.max_bytes),
                ("grpc.max_send_message_length", 1024 * 1024),
            ]
        )
        server.add_generic_rpc_handlers(
            (
                _service(
                    trace_service_pb2,
                    "TraceService",
                    self._handler(trace_service_pb2.ExportTraceServiceRequest),
                ),
                _service(
                    logs_service_pb2,
                    "LogsService",
                    self._handler(logs_service_pb2.ExportLogsServiceRequest),
                ),
                _service(metrics_service_pb2, "MetricsService", _no_metrics),
            )
        )
        try:
            self.port = server.add_insecure_port(self.endpoint)
        except RuntimeError as exc:
            raise RuntimeError(
                f"otelstream: the OTLP/gRPC receiver cannot listen on {self.endpoint} "
                f"(OTELSTREAM_OTLP_GRPC_ENDPOINT): {exc}"
            ) from None
        await server.start()
        self.server = server
        host = self.endpoint.rpartition(":")[0]
        logger.info("otelstream: OTLP/gRPC receiver (traces, logs) on %s:%s", host, self.port)
        self.core.warn_if_open(f"grpc://{host}:{self.port}")

    async def stop(self) -> None:
        """Refuses new calls at once, lets those under way finish for `grace` seconds."""
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop(self.grace)

    def _handler(self, message: _Request) -> _Handler:
        async def export(body: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            try:
                self.core.authorize(_metadata(context, "authorization"))
                answer = await self.core.accept(parse(body, PROTOBUF, message))
            except IngestError as error:
                await _abort(context, error)
            return answer.SerializeToString()

        return export


async def _no_metrics(body: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    """The distro exports metrics to the same endpoint: say what to do, not "method not found"
    (and not a silent success: Python's SDK never reads `partial_success`)."""
    await context.abort(
        grpc.StatusCode.UNIMPLEMENTED,
        "otelstream takes traces and logs, not metrics: set OTEL_METRICS_EXPORTER=none, or send "
        "metrics to a collector (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)",
    )


def _service(module: object, name: str, export: _Handler) -> grpc.GenericRpcHandler:
    """The official service (its full name from the proto's descriptor), bytes in and out."""
    full_name = module.DESCRIPTOR.services_by_name[name].full_name  # type: ignore[attr-defined]
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(export)
    return grpc.method_handlers_generic_handler(full_name, {"Export": handler})


def _metadata(context: grpc.aio.ServicerContext[bytes, bytes], key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


async def _abort(context: grpc.aio.ServicerContext[bytes, bytes], error: IngestError) -> None:
    """Ends the call with the error's code; one to retry (503, or any with a delay) with the
    delay to retry after, both as the specification says (a `RetryInfo` in the status
    details) and as the Python SDK reads it."""
    code = _CODES.get(error.status, grpc.StatusCode.UNKNOWN)
    trailing: tuple[tuple[str, bytes], ...] = ()
    if error.status == 503 or error.retry_after is not None:
        info = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=error.retry_after or 1))
        detail = AnyMessage()
        detail.Pack(info)
        status = status_pb2.Status(code=code.value[0], message=error.message, details=[detail])
        trailing = (
            ("grpc-status-details-bin", status.SerializeToString()),
            ("google.rpc.retryinfo-bin", info.SerializeToString()),
        )
    await context.abort(code, error.message, trailing_metadata=trailing)


__all__ = ["GrpcReceiver"]
