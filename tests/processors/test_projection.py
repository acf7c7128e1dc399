import pytest
from opentelemetry.trace import StatusCode

from otelstream.processors._projection import allowed_attributes, failure, task_name
from tests.conftest import Telemetry


@pytest.mark.parametrize(
    ("span_name", "attributes", "expected"),
    [
        ("task:compute", {}, "compute"),
        ("pipeline:nightly", {}, "nightly"),
        ("load rows", None, "load rows"),
        ("task:{name}", {"logfire.msg": "task:compute", "name": "compute"}, "compute"),
        ("{greeting}", {"logfire.msg": "hello"}, "hello"),
        ("task:{name}", {}, "{name}"),
        ("user {id} logged in", {"logfire.span_type": "log", "logfire.msg": "x"}, None),
        ("pending", {"logfire.span_type": "pending_span"}, None),
    ],
)
def test_task_name(span_name: str, attributes: dict[str, str] | None, expected: str | None) -> None:
    assert task_name(span_name, attributes) == expected


def test_allowed_attributes_lets_through_only_the_allowlist() -> None:
    attributes = {"rows": 3, "secret": "hunter2", "tags": ("a", "b")}
    assert allowed_attributes(attributes, frozenset()) is None
    assert allowed_attributes(attributes, frozenset({"rows", "tags", "absent"})) == {
        "rows": 3,
        "tags": ["a", "b"],
    }
    assert allowed_attributes(attributes, frozenset({"absent"})) is None


def test_failure_is_the_last_exception_or_the_error_status(telemetry: Telemetry) -> None:
    tracer = telemetry.tracer
    with pytest.raises(KeyError), tracer.start_as_current_span("raises"):
        raise KeyError("missing")
    with tracer.start_as_current_span("status only") as span:
        span.set_status(StatusCode.ERROR, "bad input")
    with tracer.start_as_current_span("fine"):
        pass
    with tracer.start_as_current_span("handled") as span:
        span.record_exception(TimeoutError("slow"))
    spans = {s.name: s for s in telemetry.exporter.get_finished_spans()}
    assert failure(spans["raises"]) == ("KeyError", "'missing'")
    assert failure(spans["status only"]) == (None, "bad input")
    assert failure(spans["fine"]) is None
    assert failure(spans["handled"]) == ("TimeoutError", "slow")


def test_list_attributes_are_cut_like_strings() -> None:
    from otelstream.processors._projection import Policy

    policy = Policy(frozenset({"files", "sizes"}), max_length=20)
    picked = policy.attributes({"files": ("a" * 50, "b", "c"), "sizes": tuple(range(100))})
    assert picked is not None
    assert picked["files"] == ["a" * 19 + "…", "…"]  # each element, then the whole
    assert picked["sizes"][-1] == "…" and sum(len(repr(n)) for n in picked["sizes"][:-1]) <= 20
    assert policy.attributes({"files": ("x", "y")}) == {"files": ["x", "y"]}


def test_a_span_event_weighs_its_spans_strings_without_being_projected() -> None:
    """The Redis hub weighs what it buffers on the span thread (`Event.weight`): a span's
    event does it from the span, leaving the projection to the reader."""
    from opentelemetry.sdk.trace import TracerProvider

    from otelstream import EventStreamProcessor, Settings
    from otelstream.events import Event
    from otelstream.events._model import EVENT_BYTES
    from otelstream.processors._projection import SpanEvent
    from otelstream.runs import streamed_run

    big = "x" * 8_000
    seen: list[Event] = []

    class Collect:
        settings = Settings()

        def publish(self, run_id: str, event: Event) -> None:
            seen.append(event)

    provider = TracerProvider()
    provider.add_span_processor(EventStreamProcessor(Collect()))  # type: ignore[arg-type]
    tracer = provider.get_tracer("t")
    with streamed_run("p", tracer_provider=provider):
        with tracer.start_as_current_span("task:load", attributes={"payload": big}) as span:
            span.add_event("exception", {"exception.stacktrace": big})
    start, end = seen[1], seen[2]
    assert isinstance(end, SpanEvent)
    # the end holds the span's strings (its attribute and its exception event); the start's
    # are the same ones, counted once
    assert start.weight() == EVENT_BYTES
    assert end.weight() == EVENT_BYTES + 2 * len(big)
    assert end._span is not None, "weighing projected the event (the span thread's work)"
    assert end.error_type is None or end.name == "load"  # projected on first read
    assert end._span is None
    assert end.weight() == EVENT_BYTES  # projected: the span is let go
    provider.shutdown()
