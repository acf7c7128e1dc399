"""The OTLP receivers' shared core (the token, a decoded request into the pipeline) and its
HTTP front end: the body, the answer, the errors.

Errors are answered as the OTLP specification asks, so that standard exporters
retry or drop correctly: 400 (with a message) for a body that does not decode,
413 past `otlp_max_body_bytes`, 415 for another encoding, 401 without the token,
503 with `Retry-After` when the hub cannot be reached (they retry). Never a 500.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import Request, Response
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from otelstream import _metrics
from otelstream._ingest.body import (
    IngestError,
    media_type,
    parse,
    read_body,
    serialize,
    status_body,
)
from otelstream._ingest.logs import LogIngest
from otelstream._ingest.traces import TraceIngest
from otelstream.hubs import Hub, HubUnavailable
from otelstream.settings import Settings

logger = logging.getLogger("otelstream.ingest")


class OtlpReceiver:
    """What `POST {prefix}/v1/traces` needs: the settings' bounds and token, the ingest."""

    def __init__(self, hub: Hub, settings: Settings) -> None:
        self.limit = settings.otlp_max_body_bytes
        token = settings.otlp_token
        self.authorization = f"Bearer {token.get_secret_value()}".encode() if token else None
        self.traces = TraceIngest(hub, settings)
        self.logs = LogIngest(self.traces, settings)

    def warn_if_open(self, where: str) -> None:
        """At start-up: an OTLP endpoint without a token takes spans from whoever reaches it."""
        if self.authorization is None:
            logger.warning(
                "otelstream: the OTLP receiver at %s is open (no OTELSTREAM_OTLP_TOKEN): any "
                "client that reaches it can add spans to runs",
                where,
            )

    def authorize(self, sent: str | None) -> None:
        """Raises 401 unless `sent` (the `authorization` header or gRPC metadata) is the token."""
        if self.authorization is None:
            return
        if not hmac.compare_digest((sent or "").encode(), self.authorization):
            raise IngestError(401, "a bearer token is required (OTELSTREAM_OTLP_TOKEN)")

    async def accept(self, parsed: ExportTraceServiceRequest | ExportLogsServiceRequest) -> Message:
        """The one core of both front ends (HTTP here, gRPC in `grpc_server`): a decoded request
        into the pipeline, its answer out; a hub that cannot be reached is a 503 to retry."""
        try:
            if isinstance(parsed, ExportTraceServiceRequest):
                answer: ExportTraceServiceResponse | ExportLogsServiceResponse
                answer = await self.traces.export(parsed)
            else:
                answer = await self.logs.export(parsed)
        except HubUnavailable as exc:
            _count(parsed, None)
            raise IngestError(503, exc.advice(), exc.retry_after) from None
        _count(parsed, answer)
        return answer

    async def export_traces(self, request: Request) -> Response:
        return await self._export(request, ExportTraceServiceRequest)

    async def export_logs(self, request: Request) -> Response:
        return await self._export(request, ExportLogsServiceRequest)

    async def _export(
        self, request: Request, message: type[ExportTraceServiceRequest | ExportLogsServiceRequest]
    ) -> Response:
        kind = "application/json"
        try:
            self.authorize(request.headers.get("authorization"))
            kind = media_type(request.headers.get("content-type", ""))
            body = await read_body(
                request.stream(),
                request.headers.get("content-length"),
                request.headers.get("content-encoding"),
                self.limit,
            )
            answer = await self.accept(parse(body, kind, message))
        except IngestError as error:
            return _refuse(error, kind)
        return Response(serialize(answer, kind), media_type=kind)


def _count(
    request: ExportTraceServiceRequest | ExportLogsServiceRequest,
    answer: ExportTraceServiceResponse | ExportLogsServiceResponse | None,
) -> None:
    """The request's spans or log records, accepted or rejected (as its `partial_success`
    says; all of them when it failed), for `otelstream.ingest.*` (`otelstream._metrics`)."""
    if isinstance(request, ExportTraceServiceRequest):
        signal, rejected_field = "spans", "rejected_spans"
        total = sum(
            len(scope.spans)
            for resource in request.resource_spans
            for scope in resource.scope_spans
        )
    else:
        signal, rejected_field = "log_records", "rejected_log_records"
        total = sum(
            len(scope.log_records)
            for resource in request.resource_logs
            for scope in resource.scope_logs
        )
    rejected = total if answer is None else getattr(answer.partial_success, rejected_field)
    _metrics.ingested(signal, total - rejected, rejected)


def _refuse(error: IngestError, kind: str) -> Response:
    headers = {} if error.retry_after is None else {"Retry-After": str(error.retry_after)}
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Response(
        status_body(error, kind), status_code=error.status, media_type=kind, headers=headers
    )


__all__ = ["OtlpReceiver"]
