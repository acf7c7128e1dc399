"""A worker that imports nothing of otelstream, run under `opentelemetry-instrument` with
`OTELSTREAM_HUB` set (the zero-code tests): it attaches the context in `CARRIER` (JSON headers,
as a queue would carry them) with the global propagators and opens one span, `remote_work`."""

from __future__ import annotations

import json
import os

from opentelemetry import context, propagate, trace

token = context.attach(propagate.extract(json.loads(os.environ["CARRIER"])))
try:
    with trace.get_tracer("zero_code_worker").start_as_current_span("remote_work"):
        pass
finally:
    context.detach(token)
trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
