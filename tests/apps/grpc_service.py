"""A Python service with no otelstream code, for `opentelemetry-instrument` (the distro's
defaults: OTLP over gRPC, batched): it handles one request under the `traceparent` given as
its argument, logs on the way, and exits (the SDK flushes its batches at exit).

    opentelemetry-instrument python tests/apps/grpc_service.py TRACEPARENT
"""

from __future__ import annotations

import logging
import sys

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

logger = logging.getLogger("billing")


def main() -> None:
    tracer = trace.get_tracer("billing.http")
    context = TraceContextTextMapPropagator().extract({"traceparent": sys.argv[1]})
    with tracer.start_as_current_span("POST /charge", context, kind=trace.SpanKind.SERVER):
        with tracer.start_as_current_span("charge card"):
            logger.warning("card declined once, retried")
        try:
            with tracer.start_as_current_span("notify"):
                raise ValueError("mail server down")
        except ValueError:
            pass


if __name__ == "__main__":
    main()
