"""The OTLP/HTTP receiver: spans (and logs) of services in any language join the runs of
their trace. Served by the router when `otlp_ingest` is on; needs the `ingest` extra
(`opentelemetry-proto`, the official generated classes: no hand-written protobuf)."""

from otelstream._ingest.receiver import OtlpReceiver

__all__ = ["OtlpReceiver"]
