"""A service of its own, in a second process: it exports spans with Python's own OTLP/HTTP
exporter (protobuf, gzip), or sends the same request as OTLP JSON (hex ids), under a parent
span given as a `traceparent`. Prints what it sent, as JSON, on its last line.

    python tests/otlp_sender.py URL TRACEPARENT protobuf|json [TOKEN]
"""

from __future__ import annotations

import base64
import gzip
import json
import sys

import httpx
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def main() -> None:
    url, traceparent, encoding = sys.argv[1:4]
    token = sys.argv[4] if len(sys.argv) > 4 else None
    headers = {"authorization": f"Bearer {token}"} if token else {}
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "billing"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("billing.http")
    context = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    with tracer.start_as_current_span("POST /charge", context, kind=trace.SpanKind.SERVER):
        with tracer.start_as_current_span("charge card"):
            pass
        try:
            with tracer.start_as_current_span("notify"):
                raise ValueError("mail server down")
        except ValueError:
            pass
    spans = memory.get_finished_spans()
    if encoding == "protobuf":
        exporter = OTLPSpanExporter(
            endpoint=f"{url}/v1/traces", headers=headers, compression=Compression.Gzip
        )
        result = exporter.export(spans)
        exporter.shutdown()
        print(json.dumps({"result": result.name}))
        return
    request = json_format.MessageToDict(encode_spans(spans))
    _ids_to_hex(request)
    body = gzip.compress(json.dumps(request).encode())
    answer = httpx.post(
        f"{url}/v1/traces",
        content=body,
        headers={**headers, "content-type": "application/json", "content-encoding": "gzip"},
    )
    print(json.dumps({"result": answer.status_code, "answer": answer.json()}))


def _ids_to_hex(node: object) -> None:
    """protobuf's JSON writes bytes as base64; OTLP JSON wants hex ids."""
    if isinstance(node, list):
        for item in node:
            _ids_to_hex(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _ids_to_hex(value)


if __name__ == "__main__":
    main()
