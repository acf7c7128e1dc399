"""Which spans become tasks: the settings' globs, a `span_filter` callable; the tree kept whole."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from otelstream import EventStreamProcessor, MemoryHub, Settings, streamed_run
from otelstream.processors._filters import GlobFilter
from tests.conftest import UrandomIdGenerator, events_of


def run_tree(hub: MemoryHub) -> tuple[list[dict[str, object]], dict[str, str]]:
    """A run whose `task:fetch` opens an HTTP client span (scope `httpx`) with a DB span in it."""
    provider = TracerProvider(id_generator=UrandomIdGenerator())
    provider.add_span_processor(EventStreamProcessor(hub, span_filter=FILTER.get("code")))
    tasks, http = provider.get_tracer("tests"), provider.get_tracer("httpx")
    ids: dict[str, str] = {}
    with streamed_run("filtered", tracer_provider=provider) as run:
        with tasks.start_as_current_span("task:fetch") as fetch:
            with http.start_as_current_span("GET /data") as get:
                with tasks.start_as_current_span("task:parse") as parse:
                    pass
        for name, span in (("fetch", fetch), ("get", get), ("parse", parse)):
            ids[name] = format(span.get_span_context().span_id, "016x")
    provider.shutdown()
    return events_of(hub, run.run_id), ids


FILTER: dict[str, object] = {}


def test_an_excluded_span_hides_and_its_children_attach_to_the_shown_ancestor() -> None:
    for exclude in ("GET *", "scope:httpx"):
        events, ids = run_tree(MemoryHub(Settings(span_exclude=exclude)))  # type: ignore[call-arg]
        tasks = [(e["type"], e["name"], e["parent_span_id"]) for e in events[1:-1]]
        assert tasks == [
            ("task_started", "fetch", events[0]["span_id"]),
            ("task_started", "parse", ids["fetch"]),
            ("task_completed", "parse", ids["fetch"]),
            ("task_completed", "fetch", events[0]["span_id"]),
        ], exclude


def test_include_keeps_only_the_matching_spans_and_the_root() -> None:
    events, _ = run_tree(MemoryHub(Settings(span_include="task:*")))  # type: ignore[call-arg]
    assert [e["name"] for e in events] == [
        "filtered",
        "fetch",
        "parse",
        "parse",
        "fetch",
        "filtered",
    ]


def test_a_span_filter_callable_decides_too() -> None:
    def no_parse(span: ReadableSpan) -> bool:
        return span.name != "task:parse"

    FILTER["code"] = no_parse
    try:
        events, ids = run_tree(MemoryHub())
    finally:
        FILTER.clear()
    assert [e["name"] for e in events] == [
        "filtered",
        "fetch",
        "GET /data",
        "GET /data",
        "fetch",
        "filtered",
    ]
    assert events[2]["parent_span_id"] == ids["fetch"]


def test_a_span_filter_that_raises_leaves_its_span_out_and_says_so(
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    """The app's filter is the app's code: a span it fails on is left out (its children move
    up), a rate-limited warning names it, and it is no internal error of otelstream's."""

    def broken(span: ReadableSpan) -> bool:
        if span.name == "task:parse":
            raise KeyError("oops")
        return True

    FILTER["code"] = broken
    try:
        events, _ = run_tree(MemoryHub())
    finally:
        FILTER.clear()
    assert "parse" not in [e["name"] for e in events]
    told = [r.getMessage() for r in caplog.records if "span_filter raised" in r.getMessage()]
    assert len(told) == 1 and "KeyError" in told[0] and "'task:parse'" in told[0], told


def test_globs_read_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OTELSTREAM_SPAN_EXCLUDE", "scope:opentelemetry.instrumentation.*, SELECT *")
    settings = Settings()
    assert settings.span_exclude == ("scope:opentelemetry.instrumentation.*", "SELECT *")
    globs = GlobFilter(settings.span_include, settings.span_exclude)
    assert not globs.shows("opentelemetry.instrumentation.httpx", "GET")
    assert not globs.shows("app", "SELECT * FROM t")
    assert globs.shows("app", "task:load")
    assert not GlobFilter()  # nothing configured: no filter at all


def test_a_templated_span_matches_by_its_template_or_its_rendered_name() -> None:
    """logfire names a span `task:{name}` and shows it as `task:compute` (`logfire.msg`)."""
    by_rendered = GlobFilter(exclude=["task:comp*"])
    assert not by_rendered.shows("logfire", "task:{name}", "task:compute")
    assert by_rendered.shows("logfire", "task:{name}", "task:load")
    assert not GlobFilter(exclude=["task:{name}"]).shows("logfire", "task:{name}", "task:load")
    only = GlobFilter(include=["task:load"])
    assert only.shows("logfire", "task:{name}", "task:load")
    assert not only.shows("logfire", "task:{name}", "task:compute")
