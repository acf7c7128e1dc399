"""A Celery worker with no otelstream code: started by `opentelemetry-instrument`, it joins the
runs that dispatch to it, live (see README.md).

    OTELSTREAM_HUB=redis://localhost:6379/0 CELERY_BROKER=redis://localhost:6379/1 \
    OTEL_PROPAGATORS=tracecontext,baggage,otelstream_run OTEL_TRACES_EXPORTER=none \
    OTEL_LOGS_EXPORTER=console \
    opentelemetry-instrument celery -A tasks worker --pool=prefork
"""

from __future__ import annotations

import logging
import os
import time

from celery import Celery
from opentelemetry import trace

BROKER = os.environ.get("CELERY_BROKER", "redis://localhost:6379/1")
app = Celery("thumbnails", broker=BROKER, backend=BROKER)
app.conf.broker_connection_retry_on_startup = True
app.conf.worker_hijack_root_logger = False  # keep the OpenTelemetry handler on the root logger
tracer = trace.get_tracer("thumbnails")
log = logging.getLogger("thumbnails")


@app.task(name="thumbnails.resize")
def resize(image: str, size: int) -> str:
    """Resize one image: a span of the OpenTelemetry API and a log line, nothing else."""
    with tracer.start_as_current_span("resize-image") as span:
        span.set_attribute("image.size", size)
        time.sleep(0.2)  # the work
        log.warning("resized %s to %d px", image, size)
    return f"{image}@{size}"
