"""Which OTLP exporter each signal and protocol takes: one table for spans, logs and metrics."""

from __future__ import annotations

import importlib
from typing import Any

PROTOCOLS = ("grpc", "http/protobuf")

OTLP_EXPORTERS = {
    ("traces", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "OTLPSpanExporter",
    ),
    ("traces", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "OTLPSpanExporter",
    ),
    ("logs", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    ("logs", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http._log_exporter",
        "OTLPLogExporter",
    ),
    ("metrics", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
        "OTLPMetricExporter",
    ),
    ("metrics", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http.metric_exporter",
        "OTLPMetricExporter",
    ),
}
"""Where OTLP's exporter is, by signal and protocol: imported only when asked for."""


def otlp_exporter(protocol: str, signal: str = "traces") -> Any:
    """The OTLP exporter of `signal` (traces, logs, metrics) over `protocol`, imported only now:
    its package is needed only by the set-ups that export."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"OTLP protocol {protocol!r} is not supported: use grpc or http/protobuf")
    module, name = OTLP_EXPORTERS[signal, protocol]
    try:
        exporter = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        package = "grpc" if protocol == "grpc" else "http"
        raise ImportError(
            f"OTLP over {protocol} needs opentelemetry-exporter-otlp-proto-{package} "
            "(or the `example` extra of otelstream)"
        ) from exc
    return exporter()
