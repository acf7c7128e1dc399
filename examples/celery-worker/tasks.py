"""A Celery worker with no otelstream code: started by `opentelemetry-instrument`, it joins the
runs that dispatch to it, live (see README.md).

    OTELSTREAM_HUB=redis://localhost:6379/0 CELERY_BROKER=redis://localhost:6379/1 \
    OTEL_PROPAGATORS=tracecontext,baggage,otelstream_run OTEL_TRACES_EXPORTER=none \
    opentelemetry-instrument celery -A tasks worker --pool=prefork
"""

from __future__ import annotations

import os
import time

from celery import Celery
from opentelemetry import trace

BROKER = os.environ.get("CELERY_BROKER", "redis://localhost:6379/1")
app = Celery("thumbnails", broker=BROKER, backend=BROKER)
app.conf.broker_connection_retry_on_startup = True
tracer = trace.get_tracer("thumbnails")


@app.task(name="thumbnails.resize")
def resize(image: str, size: int) -> str:
    """Resize one image: a span of the OpenTelemetry API, nothing else."""
    with tracer.start_as_current_span("resize-image") as span:
        span.set_attribute("image.size", size)
        time.sleep(0.2)  # the work
    return f"{image}@{size}"
