"""otelstream served as its README says: the global tracer provider set, `create_router`, and
pipelines that only open spans.

FastAPI's own telemetry is on (it is, once a global SDK provider is set), with the
streams left out of it (`untraced_streams`) as the README says;
`BENCH_FASTAPI_TELEMETRY=as-it-comes` keeps FastAPI's defaults (a server span open
per stream), `off` turns its tracing off. The hub is
the one `OTELSTREAM_HUB` names, as in an application (`memory` by default,
`redis://…` for part 5), with every other `OTELSTREAM_*` setting from the
environment too.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from bench.servers._control import control_routes
from bench.servers._pipeline import END_NS, PIPELINES
from otelstream import EventStreamProcessor, Settings
from otelstream.fastapi import create_router, untraced_streams
from otelstream.hubs import hub_from_settings

settings = Settings(
    # 100 fan-out runs are started before their subscribers connect; the workers run them
    # while the rest wait in the queue, which must hold them all.
    max_queued_runs=256,
    attribute_allowlist=frozenset({END_NS}),  # the latency pipelines' timestamps
)
hub = hub_from_settings(settings)
provider = TracerProvider()
provider.add_span_processor(EventStreamProcessor(hub))
trace.set_tracer_provider(provider)

_TELEMETRY = os.environ.get("BENCH_FASTAPI_TELEMETRY", "documented")
if _TELEMETRY == "documented":  # the README's: the streams left out of FastAPI's telemetry
    app = FastAPI(telemetry={"exclude": untraced_streams})
elif _TELEMETRY == "off":
    app = FastAPI(telemetry={"tracing": False})
else:  # "as-it-comes": a server span open for every stream
    app = FastAPI()
app.include_router(create_router(hub=hub, pipelines=PIPELINES, settings=settings))
app.router.routes.extend(control_routes(lambda: hub.subscriber_count()))
