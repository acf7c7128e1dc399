"""A pipeline that calls a service in another language: the Node pricing service.

`priced` opens a CLIENT span and calls `GET {PRICING_URL}/price` with the run's
`traceparent` in the request's headers (what an instrumented HTTP client does).
The service (`examples/node-service`) exports its own spans over OTLP, to
otelstream's receiver directly or through the collector; with the receiver on
(`OTELSTREAM_OTLP_INGEST=true`), they join this run's live stream under the call.
Registered only when `PRICING_URL` is set.
"""

from __future__ import annotations

import json
import os
import urllib.request
from functools import partial
from typing import Annotated, Any

from opentelemetry import propagate, trace
from pydantic import Field

from .pipelines import Pipeline, Seconds, wait

tracer = trace.get_tracer(__name__)
Items = Annotated[int, Field(ge=1, le=1000, description="items to price")]


def ask_price(url: str, items: int) -> float:
    """The call: a CLIENT span, its context sent along as `traceparent`."""
    with tracer.start_as_current_span("GET /price", kind=trace.SpanKind.CLIENT) as span:
        headers: dict[str, str] = {}
        propagate.inject(headers)
        request = urllib.request.Request(f"{url}/price?items={items}", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as answer:
            span.set_attribute("http.response.status_code", answer.status)
            total: float = json.load(answer)["total"]
        return total


def quote(url: str, items: int, seconds: float) -> float:
    with tracer.start_as_current_span("task:quote"):
        wait(seconds)
        return ask_price(url, items)


def priced_pipeline(url: str, items: Items = 3, seconds: Seconds = 0.1) -> Pipeline:
    """quote: ask the Node pricing service for a price (its spans stream too)."""
    return Pipeline(lambda: quote(url, items, seconds))


def service_pipelines() -> dict[str, Any]:
    url = os.environ.get("PRICING_URL")
    return {"priced": partial(priced_pipeline, url.rstrip("/"))} if url else {}
