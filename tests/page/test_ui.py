"""The live page in a real headless Chromium, against the example app on a real uvicorn.

The browser and page fixtures are in tests/pages.py (through conftest.py).
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI

from otelstream._server.ui import ui_router
from otelstream.fastapi import create_router
from otelstream.testing import UvicornServer, wait_for_run
from tests.conftest import ROOT, Gate, app_process, make_telemetry
from tests.pages import as_json, rows, serving, start_from_page, wait_for_status
from tests.usual import learn

if TYPE_CHECKING:
    from playwright.sync_api import Page

TRACE_URL = "http://127.0.0.1:16686/trace/{trace_id}"


@pytest.fixture(scope="module")
def example() -> Iterator[httpx.Client]:
    """The example app (tests/apps/ui_example.py) in a process of its own."""
    with (
        app_process("tests.apps.ui_example:app", OTELSTREAM_TRACE_URL=TRACE_URL) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


# -- helpers -------------------------------------------------------------------------------------


def page_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        "() => ({lastSeq: otelstream.run.lastSeq, stats: otelstream.run.stats})"
    )
    return state


def events_requests(example: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    response = example.get("/test/events-requests", params={"run_id": run_id})
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()
    return found


def settle(check: Callable[[], bool], seconds: float) -> None:
    """Watch `check` for `seconds`; fails as soon as it is false."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check()
        time.sleep(0.1)


# -- the example, driven from the page -------------------------------------------------------------


def test_the_page_lists_pipelines_and_shows_the_example_run(
    page: Page, example: httpx.Client
) -> None:
    base = str(example.base_url).rstrip("/")
    page.goto(f"{base}/ui")
    page.wait_for_selector("body[data-forms]")  # the pipelines are listed, their forms built
    names = page.eval_on_selector_all(".pipeline-name", "els => els.map(e => e.textContent)")
    assert names == ["example", "failing", "parallel", "nested", "ingest"]
    descriptions = page.eval_on_selector_all(
        ".pipeline-description", "els => els.map(e => e.textContent)"
    )
    assert descriptions[0] == "compute, then finalize: the original example."
    # a docstring's `code` is drawn as a <code> element, not as raw backticks
    assert descriptions[2] == "fetch width shards in parallel threads, then merge them."
    codes = page.eval_on_selector_all(
        ".pipeline-description code", "els => els.map(e => e.textContent)"
    )
    assert codes == ["width"]

    run_id = start_from_page(page, base, "example", '{"seconds": 0.4}')
    wait_for_status(page, "success")
    assert rows(page) == [("example", "done", 0), ("compute", "done", 1), ("finalize", "done", 1)]
    assert page.text_content("#run-name") == "example"
    assert page.text_content("#run-status") == "done"
    assert page.text_content("#run-id") == run_id
    assert page.get_attribute("#trace-link", "href") == TRACE_URL.format(trace_id=run_id)
    assert page.is_visible("#trace-link")
    durations = page.eval_on_selector_all("#tree .duration", "els => els.map(e => e.textContent)")
    assert len(durations) == 3 and all(d.endswith(" ms") or d.endswith(" s") for d in durations)
    # the bars share one axis: compute starts at the left, finalize where compute ends
    bars = page.eval_on_selector_all(
        "#tree .bar",
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.left, r.right]; })",
    )
    (run_left, run_right), (compute_left, compute_right), (finalize_left, finalize_right) = bars
    assert run_left <= compute_left < compute_right <= finalize_left + 1
    assert finalize_left < finalize_right <= run_right + 1
    assert page_state(page)["stats"]["duplicates"] == 0
    (ROOT / "artifacts").mkdir(exist_ok=True)
    page.screenshot(path=str(ROOT / "artifacts" / "ui-example.png"), full_page=True)


def test_a_failing_run_shows_its_error(page: Page, example: httpx.Client) -> None:
    base = str(example.base_url).rstrip("/")
    start_from_page(page, base, "failing", '{"seconds": 0.05}')
    wait_for_status(page, "error")
    assert rows(page) == [
        ("failing", "failed", 0),
        ("compute", "done", 1),
        ("validate", "failed", 1),
    ]
    validate = page.locator('#tree .node[data-name="validate"] > .row > .error')
    assert validate.text_content() == "ValueError: result 42 is out of range"
    assert page.locator('#tree .node[data-name="compute"] > .row > .error').is_hidden()
    assert page.text_content("#run-status") == "failed"
    assert page.text_content("#run-error") == "ValueError: result 42 is out of range"


def test_a_parameter_error_names_the_field(page: Page, example: httpx.Client) -> None:
    base = str(example.base_url).rstrip("/")
    page.goto(f"{base}/ui")
    page.check('input[name="pipeline"][value="example"]')
    as_json(page)
    page.fill("#parameters", '{"bogus": 1}')
    page.click("#start-button")
    page.wait_for_selector("#form-error:not([hidden])")
    assert page.text_content("#form-error") == (
        "The run did not start: parameters.bogus: Extra inputs are not permitted"
    )


def test_a_run_opened_midway_shows_its_real_elapsed_time(page: Page, example: httpx.Client) -> None:
    """The events replayed to a late page are seconds old: they must not set its clock.

    Server and page share this machine's clock: the page's estimate of the difference must be
    near 0, not minus the age of the freshest replayed event (4 s).
    """
    run_id = example.post(
        "/runs", json={"pipeline_name": "example", "parameters": {"seconds": 8}}
    ).json()["run_id"]
    started = _seconds(example.get(f"/runs/{run_id}").json()["started_at"])
    time.sleep(max(0.0, started + 4.0 - time.time()))
    base = str(example.base_url).rstrip("/")
    page.goto(f"{base}/ui/runs/{run_id}")
    page.wait_for_function("() => document.querySelector('#run-duration').textContent !== ''")
    page.wait_for_function("() => otelstream.run.liveAfter !== null")
    skew_ms = page.evaluate("() => otelstream.run.skewMs")
    assert abs(skew_ms) < 1000, skew_ms
    for _ in range(3):
        shown, now_ms = page.evaluate(
            "() => [document.querySelector('#run-duration').textContent, Date.now()]"
        )
        assert shown.endswith(" s"), shown
        elapsed = now_ms / 1000 - started
        # drawn up to 250 ms ago (more on a busy machine), with the skew measured above
        assert elapsed - 1.5 < float(shown.removesuffix(" s")) < elapsed + 1.0, (shown, elapsed)
        time.sleep(0.4)
    assert page.text_content("#run-status") == "running"


def _seconds(rfc3339: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def test_tasks_whose_first_events_were_evicted_sit_under_a_placeholder(page: Page) -> None:
    """With 3 events kept, a late page gets events 6 to 8: `three` starts, ends, `wait` starts.

    Their parent's events are gone: they sit under a placeholder, under a stand-in for the run
    (named from GET /runs/{id}), which the run's `pipeline_completed` later turns into the root.
    The pipeline has a history: what is usual for the run, told by its evicted
    `pipeline_started`, comes from GET /runs/{id}'s tree, so the header still says it.
    """
    telemetry = make_telemetry(replay_events=3)
    learn(telemetry.hub, "gated", 20_000.0, {"one": 1.0})
    tracer = telemetry.tracer
    gate = Gate()

    def gated() -> None:
        for name in ("one", "two", "three"):
            with tracer.start_as_current_span(f"task:{name}"):
                pass
        with tracer.start_as_current_span("task:wait"):
            gate()

    app = FastAPI()
    app.include_router(
        create_router(
            hub=telemetry.hub, pipelines={"gated": gated}, tracer_provider=telemetry.provider
        )
    )
    try:
        with serving(page, app) as server, httpx.Client(base_url=server.url) as client:
            run_id = client.post("/runs", json={"pipeline_name": "gated"}).json()["run_id"]
            assert gate.reached.wait(10)
            page.goto(f"{server.url}/ui/runs/{run_id}")
            page.wait_for_selector('#tree .node[data-name="wait"]')
            assert rows(page) == [
                ("gated", "running", 0),
                ("earlier events missed", "missed", 1),
                ("three", "done", 2),
                ("wait", "running", 2),
            ]
            assert page.text_content("#run-message") == (
                "Events 1 to 5 of this run are no longer kept by the server: tasks whose parent "
                "is unknown are shown under “earlier events missed”."
            )
            page.wait_for_selector('#run-usual[data-state="left"]')
            note = page.text_content("#run-usual") or ""
            assert re.fullmatch(r"usually 20\.0 s · about \d+\.\d s left", note), note
            gate.opened.set()
            wait_for_status(page, "success")
            assert rows(page) == [
                ("gated", "done", 0),
                ("earlier events missed", "missed", 1),
                ("three", "done", 2),
                ("wait", "done", 2),
            ]
            assert page.text_content("#run-counts") == "2 tasks"
    finally:
        gate.opened.set()
        telemetry.provider.shutdown()


@pytest.mark.parametrize("replay_all", [False, True], ids=["resume", "server-repeats"])
def test_a_cut_stream_resumes_without_duplicates_or_gaps(
    page: Page, example: httpx.Client, replay_all: bool
) -> None:
    """The server ends the first stream after two events, in the middle of `compute`.

    The page must reconnect with Last-Event-ID: 2 and show each task once; in
    `server-repeats` the resumed stream starts over and the page drops the repeats.
    """
    base = str(example.base_url).rstrip("/")
    example.post("/test/arm-cut", params={"after": 2, "replay_all": replay_all})
    run_id = start_from_page(page, base, "example", '{"seconds": 1.0}')
    wait_for_status(page, "success")
    assert rows(page) == [("example", "done", 0), ("compute", "done", 1), ("finalize", "done", 1)]
    requests = events_requests(example, run_id)
    assert [(r["last_event_id"], r["status"]) for r in requests] == [(None, 200), ("2", 200)]
    state = page_state(page)
    assert state["lastSeq"] == 6
    assert state["stats"]["gaps"] == 0
    assert state["stats"]["duplicates"] == (2 if replay_all else 0)
    assert state["stats"]["received"] == (8 if replay_all else 6)


def test_a_finished_run_is_not_polled(page: Page, example: httpx.Client) -> None:
    """Each stream carries `retry: 250`, so a page that kept reconnecting would show at once."""
    base = str(example.base_url).rstrip("/")
    run_id = start_from_page(page, base, "example", '{"seconds": 0.05}')
    wait_for_status(page, "success")
    settle(lambda: len(events_requests(example, run_id)) == 1, seconds=2.0)
    assert page.get_attribute("#connection", "data-state") == "closed"


def test_opening_a_finished_run_by_its_url_rebuilds_it(page: Page, example: httpx.Client) -> None:
    response = example.post(
        "/runs", json={"pipeline_name": "nested", "parameters": {"seconds": 0.01}}
    )
    run_id = response.json()["run_id"]
    wait_for_run(example, run_id)
    base = str(example.base_url).rstrip("/")
    page.goto(f"{base}/ui/runs/{run_id}")
    wait_for_status(page, "success")
    assert rows(page) == [
        ("nested", "done", 0),
        ("prepare", "done", 1),
        ("load", "done", 2),
        ("clean", "done", 2),
        ("report", "done", 1),
    ]
    settle(lambda: len(events_requests(example, run_id)) == 1, seconds=1.0)


def test_an_unknown_run_says_so(page: Page, example: httpx.Client) -> None:
    base = str(example.base_url).rstrip("/")
    page.goto(f"{base}/ui/runs/{'0' * 32}")
    wait_for_status(page, "unknown")
    assert page.text_content("#run-status") == "not found"
    message = page.text_content("#run-message") or ""
    assert message.startswith(f"unknown or expired run '{'0' * 32}': runs are kept in memory")
    assert rows(page) == []


def test_hundreds_of_tasks_each_drawn_once(page: Page) -> None:
    """Rows are added once each and updated in place: no re-render of the whole tree.

    The example bounds its `width` (a thread per shard); this app runs 200 shards on 8.
    """
    page.add_init_script(
        """
        window.addedRows = 0;
        new MutationObserver(records => {
            for (const r of records) for (const n of r.addedNodes)
                if (n.classList && n.classList.contains('node')) window.addedRows += 1;
        }).observe(document, {childList: true, subtree: true});
        """
    )
    telemetry = make_telemetry()
    tracer = telemetry.tracer

    def shard(index: int) -> None:
        with tracer.start_as_current_span(f"task:fetch_shard_{index}"):
            time.sleep(0.02)

    def wide(width: int = 200) -> None:
        with ThreadPoolExecutor(8) as pool:
            # copy_context on this thread carries the run's span into each worker
            futures = [pool.submit(contextvars.copy_context().run, shard, i) for i in range(width)]
            for future in futures:
                future.result()
        with tracer.start_as_current_span("task:merge"):
            pass

    app = FastAPI()
    app.include_router(
        create_router(
            hub=telemetry.hub, pipelines={"wide": wide}, tracer_provider=telemetry.provider
        )
    )
    try:
        with serving(page, app) as server:
            start_from_page(page, server.url, "wide", '{"width": 200}')
            wait_for_status(page, "success")
            shown = rows(page)
            added, counts = page.evaluate("window.addedRows"), page.text_content("#run-counts")
    finally:
        telemetry.provider.shutdown()
    assert len(shown) == 202
    assert shown[0] == ("wide", "done", 0)
    assert shown[-1] == ("merge", "done", 1)
    assert sorted(name for name, _, _ in shown[1:-1]) == sorted(
        f"fetch_shard_{i}" for i in range(200)
    )
    assert {(status, depth) for _, status, depth in shown[1:]} == {("done", 1)}
    assert added == 202
    assert counts == "201 tasks"


# -- event data is text, and the page follows the router's prefix ---------------------------------


def test_event_data_is_shown_as_text_under_a_prefix(page: Page) -> None:
    telemetry = make_telemetry()
    tracer = telemetry.tracer
    hostile = '<img src=x onerror="window.pwned=1">'

    def hostile_pipeline() -> None:
        """runs `<img src=x onerror="window.pwned=1">` and fails"""
        with tracer.start_as_current_span("task:<b>bold</b>"):
            raise RuntimeError(hostile)

    router = create_router(
        hub=telemetry.hub,
        pipelines={"<i>x</i>": hostile_pipeline},
        tracer_provider=telemetry.provider,
        prefix="/otel",
    )
    router.include_router(ui_router())  # as create_router does it
    app = FastAPI()
    app.include_router(router)
    with serving(page, app) as server:
        run_id = start_from_page(page, f"{server.url}/otel", "<i>x</i>", "{}")
        assert page.url == f"{server.url}/otel/ui/runs/{run_id}"
        assert page.locator("#pipelines img").count() == 0
        assert page.text_content(".pipeline-description code") == hostile
        wait_for_status(page, "error")
        assert rows(page) == [("<i>x</i>", "failed", 0), ("<b>bold</b>", "failed", 1)]
        error = page.locator('#tree .node[data-name="<b>bold</b>"] > .row > .error')
        assert error.text_content() == f"RuntimeError: {hostile}"
        assert page.locator("#tree img, #tree b, #tree i, #run-error img").count() == 0
        assert page.evaluate("window.pwned") is None
    telemetry.provider.shutdown()


# -- without a browser: where the page looks for the API, and how it is served ---------------------


def test_the_page_calls_the_api_where_its_own_path_hangs_from() -> None:
    inner = FastAPI()
    inner.include_router(ui_router("/otel"))
    app = FastAPI()
    app.mount("/mounted", inner)
    with UvicornServer(app) as server, httpx.Client(base_url=server.url) as client:
        for path in ("/mounted/otel/ui", f"/mounted/otel/ui/runs/{'a' * 32}"):
            page = client.get(path)
            assert page.status_code == 200
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert '<meta name="otelstream-base" content="/mounted/otel">' in page.text
        script = re.search(r'src="(/mounted/otel/ui/static/app\.js\?v=\w+)"', page.text)
        assert script is not None
        asset = client.get(script.group(1))
        assert asset.status_code == 200
        assert asset.headers["content-type"] == "text/javascript; charset=utf-8"
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert client.get("/mounted/otel/ui/static/app.js").headers["cache-control"] == "no-cache"
        assert client.get("/mounted/otel/ui/static/secret.py").status_code == 404
