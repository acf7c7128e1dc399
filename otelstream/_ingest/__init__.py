"""The OTLP receivers: spans (and logs) of services in any language join the runs of their
trace. OTLP/HTTP is served by the router when `otlp_ingest` is on, OTLP/gRPC (`grpc_server`)
on `otlp_grpc_endpoint`, both through one core (`receiver.OtlpReceiver`); they need the
`ingest` extra (`opentelemetry-proto`, the official generated classes: no hand-written
protobuf; `grpcio`)."""

from otelstream._ingest.receiver import OtlpReceiver

__all__ = ["OtlpReceiver"]
