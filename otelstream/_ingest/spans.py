"""An OTLP span as the projection reads spans: an SDK `ReadableSpan`, built with what it reads.

`otelstream.processors._projection` turns a local span into events; a decoded OTLP span goes
through the very same code once it is a `ReadableSpan` with the same ids, name,
times, kind, status, instrumentation scope, allowlisted attributes and
`exception` events. What the projection never reads (links, other events, other
attributes) is left out, so a span costs what it shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as OtlpResource
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event as SpanEventRecord
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otelstream.runs._mark import STREAMED_MARK

_KINDS = {
    OtlpSpan.SPAN_KIND_INTERNAL: SpanKind.INTERNAL,
    OtlpSpan.SPAN_KIND_SERVER: SpanKind.SERVER,
    OtlpSpan.SPAN_KIND_CLIENT: SpanKind.CLIENT,
    OtlpSpan.SPAN_KIND_PRODUCER: SpanKind.PRODUCER,
    OtlpSpan.SPAN_KIND_CONSUMER: SpanKind.CONSUMER,
}
_PLAIN_STATUS = {0: Status(StatusCode.UNSET), 1: Status(StatusCode.OK)}  # shared: immutable
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NO_RESOURCE = Resource.get_empty()  # not read by the projection; the SDK's default detects one


def value(any_value: AnyValue) -> Any:
    """An OTLP attribute value as an SDK attribute value (str, bool, int, float, lists)."""
    which = any_value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [value(item) for item in any_value.array_value.values]
    if which == "kvlist_value":
        return str({kv.key: value(kv.value) for kv in any_value.kvlist_value.values})
    if which == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, which)


def attributes(pairs: Iterable[KeyValue], wanted: frozenset[str] | None) -> dict[str, Any]:
    """The attributes named in `wanted` (all when None)."""
    return {pair.key: value(pair.value) for pair in pairs if wanted is None or pair.key in wanted}


def service_name(resource: OtlpResource) -> str | None:
    for pair in resource.attributes:
        if pair.key == "service.name":
            name = value(pair.value)
            return name if isinstance(name, str) else None
    return None


def streams_itself(resource: OtlpResource) -> bool:
    return any(pair.key == STREAMED_MARK and value(pair.value) for pair in resource.attributes)


def scope_of(name: str, version: str) -> InstrumentationScope:
    return InstrumentationScope(name, version or None)


def readable(
    span: OtlpSpan, scope: InstrumentationScope, allowlist: frozenset[str] | None
) -> ReadableSpan:
    """The span as the projection reads it; `allowlist`: the attributes it carries (those an
    event may show), or every one when None (the projection still shows only the allowed)."""
    trace_id = int.from_bytes(span.trace_id, "big")
    context = SpanContext(trace_id, int.from_bytes(span.span_id, "big"), False, _SAMPLED)
    parent = None
    if span.parent_span_id:
        parent = SpanContext(trace_id, int.from_bytes(span.parent_span_id, "big"), True, _SAMPLED)
    failures: tuple[SpanEventRecord, ...] = ()
    if len(span.events):  # most spans have none: no iterator made
        failures = tuple(
            SpanEventRecord("exception", attributes(event.attributes, None), event.time_unix_nano)
            for event in span.events
            if event.name == "exception"
        )
    code = span.status.code
    if code == 2:
        status = Status(StatusCode.ERROR, span.status.message or None)
    else:
        status = _PLAIN_STATUS.get(code, _PLAIN_STATUS[0])  # an unknown code: UNSET
    return ReadableSpan(
        span.name,
        context,
        parent,
        resource=_NO_RESOURCE,
        attributes=attributes(span.attributes, allowlist) if allowlist != frozenset() else None,
        events=failures,
        kind=_KINDS.get(span.kind, SpanKind.INTERNAL),
        status=status,
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano or span.start_time_unix_nano,
        instrumentation_scope=scope,
    )


__all__ = [
    "attributes",
    "readable",
    "scope_of",
    "service_name",
    "streams_itself",
    "value",
]
