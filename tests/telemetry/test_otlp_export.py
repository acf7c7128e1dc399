"""The example app exports over real OTLP (gRPC and HTTP) what it streams, in one trace.

The app runs as users run it (uvicorn in a process of its own, configured by
OTEL_* variables); a real OTLP receiver on 127.0.0.1 stands in for the
Collector. Spans are read after the app has exited, so its lifespan's
`telemetry.shutdown()` must have flushed them: nothing here waits on a clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from otelstream.testing import read_events
from tests.conftest import NESTED_SHAPE, app_process, shape
from tests.otlp_receiver import RECEIVERS, SPAN_KIND_SERVER, OtlpReceiver, ReceivedSpan

APP = "examples.fastapi-telemetry.main:app"
NESTED = {"pipeline_name": "nested", "parameters": {"seconds": 0}}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def structure(events: list[dict[str, object]], spans: list[ReceivedSpan]) -> None:
    """The exported spans of a run are its events' tree, under the request's server span."""
    run_id = events[0]["run_id"]
    by_id = {span.span_id: span for span in spans}
    assert {span.trace_id for span in spans} == {run_id}
    servers = [span for span in spans if span.kind == SPAN_KIND_SERVER]
    assert [span.name for span in servers] == ["POST /run-workflow"]  # one, not two
    pipeline = by_id[events[0]["span_id"]]
    assert (pipeline.name, pipeline.parent_span_id) == ("pipeline:nested", servers[0].span_id)
    for event in events[1:-1]:
        span = by_id[event["span_id"]]
        assert (span.name, span.parent_span_id) == (
            f"task:{event['name']}",
            event["parent_span_id"],
        )
    # the run's spans and the request's span; no per-chunk `http send`, no fastapi.* spans
    assert len(spans) == 1 + len({event["span_id"] for event in events})


def status_code(span: ReceivedSpan) -> object:
    return span.attributes.get("http.response.status_code", span.attributes.get("http.status_code"))


@pytest.fixture(params=sorted(RECEIVERS))
def receiver(request: pytest.FixtureRequest) -> Iterator[OtlpReceiver]:
    with RECEIVERS[request.param]() as receiver:
        yield receiver


def test_a_run_is_exported_as_the_trace_it_streamed(receiver: OtlpReceiver) -> None:
    with app_process(
        APP,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol,
        OTEL_SERVICE_NAME="otelstream-e2e",
    ) as url:
        with httpx.Client(timeout=10) as client:
            events = read_events(client, "POST", f"{url}/run-workflow", json=NESTED)
            # a caller's traceparent: the run joins the caller's trace, under the caller's span
            joined = read_events(
                client,
                "POST",
                f"{url}/run-workflow",
                json=NESTED,
                headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"},
            )
            again = client.post(
                f"{url}/run-workflow",
                json=NESTED,
                headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"},
            )
    assert shape(events) == NESTED_SHAPE
    run_id = events[0]["run_id"]
    spans = receiver.spans(run_id)
    structure(events, spans)
    assert {span.resource["service.name"] for span in spans} == {"otelstream-e2e"}

    assert shape(joined) == shape(events)
    assert {event["run_id"] for event in joined} == {TRACE_ID}
    # the trace has a run: a second run in it would share its run id, so it is refused (409)
    assert again.status_code == 409
    joined_spans = receiver.spans(TRACE_ID)
    refused = [span for span in joined_spans if status_code(span) == 409]
    assert [(span.kind, span.parent_span_id) for span in refused] == [
        (SPAN_KIND_SERVER, CALLER_SPAN)
    ]
    joined_spans = [span for span in joined_spans if span not in refused]
    structure(joined, joined_spans)
    (server,) = [span for span in joined_spans if span.kind == SPAN_KIND_SERVER]
    assert server.parent_span_id == CALLER_SPAN


def test_runs_stream_completely_when_the_sampler_drops_every_trace() -> None:
    with RECEIVERS["grpc"]() as receiver:
        with app_process(
            APP,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_TRACES_SAMPLER="traceidratio",
            OTEL_TRACES_SAMPLER_ARG="0",
        ) as url:
            with httpx.Client(timeout=10) as client:
                events = read_events(client, "POST", f"{url}/run-workflow", json=NESTED)
                run = client.get(f"{url}/runs/{events[0]['run_id']}").json()
        assert len(events) == 10 and events[-1]["type"] == "pipeline_completed"
        assert events[-1]["status"] == "success" and run["status"] == "success"
        # the app has exited and flushed its exporter: it had nothing to send
        assert receiver.spans() == [] and receiver.requests == 0
