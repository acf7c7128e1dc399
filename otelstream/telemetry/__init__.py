"""setup_telemetry: one call that gives the app a tracer provider that exports and streams."""

from otelstream.telemetry._setup import (
    OtelEnvironment,
    Telemetry,
    log_exporters,
    setup_telemetry,
    span_exporters,
)

__all__ = [
    "OtelEnvironment",
    "Telemetry",
    "log_exporters",
    "setup_telemetry",
    "span_exporters",
]
