"""The page as a run view, in a real Chromium against tests/apps/people.py in a process of its
own: the parameters form, the Cancel button, a cancelled run, a long error clipped once, a run
that logged errors, the runs before one is opened, run tokens, whole log lines.

Screenshots go to artifacts/ (not committed): ui-running-cancel.png, ui-cancelled.png,
ui-long-error.png, ui-overview.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import ROOT, app_process
from tests.pages import rows, serving, start_from_page, wait_for_status

if TYPE_CHECKING:
    from playwright.sync_api import Page

ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="module")
def people() -> Iterator[httpx.Client]:
    with (
        app_process(
            "tests.apps.people:app",
            OTELSTREAM_LOG_LEVEL="INFO",
            OTELSTREAM_ATTRIBUTE_ALLOWLIST="otelstream.parameters",
        ) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


def base_of(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def lines_of(page: Page, selector: str) -> float:
    """How many lines of text the element takes."""
    height, line = page.eval_on_selector(
        selector,
        "e => [e.getBoundingClientRect().height, parseFloat(getComputedStyle(e).lineHeight)]",
    )
    return float(height) / float(line)


def test_the_form_starts_a_run_that_the_cancel_button_stops(
    page: Page, people: httpx.Client
) -> None:
    base = base_of(people)
    page.goto(f"{base}/ui")
    page.wait_for_selector("body[data-forms='yes']")
    page.check('input[name="pipeline"][value="slow"]')
    # the form: names, types, defaults, bounds and descriptions from the OpenAPI document
    seconds = page.locator('.param[data-field="seconds"]')
    assert seconds.locator("input").get_attribute("type") == "number"
    assert seconds.locator("input").input_value() == "30"
    assert (
        seconds.locator("input").get_attribute("min"),
        seconds.locator("input").get_attribute("max"),
    ) == ("0", "120")
    assert (
        seconds.locator(".param-hint").text_content() == "how long the one task takes · ≥ 0, ≤ 120"
    )
    assert page.locator('.param[data-field="mode"] select').input_value() == "fast"
    assert page.locator('.param[data-field="dry_run"] input').get_attribute("type") == "checkbox"
    assert page.locator('.param[data-field="tags"] .param-type').text_content() == "JSON"
    assert page.is_hidden("#parameters")  # the raw JSON box is one click away
    page.fill('.param[data-field="seconds"] input', "20")
    page.fill('.param[data-field="rows"] input', "5")
    page.select_option('.param[data-field="mode"] select', "careful")
    page.fill('.param[data-field="tags"] textarea', '["a", "b"]')
    page.click("#start-button")
    page.wait_for_url("**/ui/runs/*")
    page.wait_for_selector('#tree .node[data-name="wait"][data-status="running"]')
    # the header: its parameters, a Cancel button while it runs
    params = page.eval_on_selector_all(
        "#run-params dt, #run-params dd", "els => els.map(e => e.textContent)"
    )
    assert params[:8] == ["seconds", "20", "rows", "5", "mode", "careful", "dry_run", "false"]
    assert params[-2:] == ["tags", '["a","b"]']
    assert page.is_visible("#cancel-button")
    shot(page, "ui-running-cancel.png")
    page.click("#cancel-button")
    wait_for_status(page, "cancelled")
    assert page.text_content("#cancel-result") == "Cancelled."
    assert page.text_content("#run-status") == "cancelled"
    assert rows(page) == [
        ("slow", "cancelled", 0),
        ("prepare", "cancelled", 1),
        ("wait", "cancelled", 2),
    ]
    assert page.text_content("#run-counts") == "2 tasks, 2 cancelled"
    assert page.is_hidden("#cancel-button") and page.is_hidden("#run-error")
    assert page.locator("#tree .error:visible").count() == 0  # RunCancelled is not an error
    colours = page.evaluate(
        """() => {
            const probe = document.createElement('span');
            probe.className = 'status';
            document.body.append(probe);
            const of = (status) => {
                probe.dataset.status = status;
                return getComputedStyle(probe).color;
            };
            return [of('running'), of('cancelled'), of('error'), of('success')];
        }"""
    )
    assert len(set(colours)) == 4, colours  # cancelled has a colour of its own
    shot(page, "ui-cancelled.png")
    # the runs list says cancelled too
    run_id = page.url.rsplit("/", 1)[1]
    page.wait_for_selector(f'.run-item[data-run-id="{run_id}"][data-status="cancelled"]')


def test_a_422_is_shown_beside_its_field(page: Page, people: httpx.Client) -> None:
    page.goto(f"{base_of(people)}/ui")
    page.wait_for_selector("body[data-forms='yes']")
    page.check('input[name="pipeline"][value="slow"]')
    page.fill('.param[data-field="seconds"] input', "500")
    page.click("#start-button")
    page.wait_for_selector("#form-error:not([hidden])")
    assert page.text_content('.param[data-field="seconds"] .param-error') == (
        "Input should be less than or equal to 120"
    )
    assert page.get_attribute('.param[data-field="seconds"] input', "aria-invalid") == "true"
    # said once: under the field; below the form only that the run did not start, and why
    below = page.text_content("#form-error")
    assert below == "The run did not start: a parameter is not valid (see its field)"
    assert "120" not in (below or "")
    shot(page, "ui-422-once.png")
    # the raw JSON fallback carries what the form holds, and back
    page.check("#params-raw")
    assert '"seconds": 500' in page.input_value("#parameters")
    page.fill("#parameters", '{"seconds": 7}')
    page.uncheck("#params-raw")
    assert page.input_value('.param[data-field="seconds"] input') == "7"


def test_a_long_error_is_one_line_shown_once_and_opens_on_click(
    page: Page, people: httpx.Client
) -> None:
    start_from_page(page, base_of(people), "long_error", "{}")
    wait_for_status(page, "error")
    shown = page.locator("#tree .error:visible")
    assert shown.count() == 1  # on the task that raised it, not on the run's row too
    task_error = '#tree .node[data-name="fetch"] > .row > .error'
    assert (page.text_content(task_error) or "").startswith("ConnectionError: the upstream")
    assert len(page.text_content(task_error) or "") > 4000  # whole in the DOM, cut on screen
    assert round(lines_of(page, task_error)) == 1
    assert round(lines_of(page, "#run-error")) == 1
    shot(page, "ui-long-error.png")
    page.click(task_error)
    assert lines_of(page, task_error) > 5  # whole, on click
    page.click(task_error)
    assert round(lines_of(page, task_error)) == 1


def test_a_runs_own_error_is_said_once_in_its_header_not_again_on_its_row(
    page: Page, people: httpx.Client
) -> None:
    """The run raised it itself (as a WorkerLost end does): the header says it, the run's row
    in the tree does not say it again."""
    start_from_page(page, base_of(people), "gives_up", "{}")
    wait_for_status(page, "error")
    assert page.text_content("#run-error") == "TimeoutError: gave up after 3 tries"
    assert page.locator("#run-error").is_visible()
    assert page.locator("#tree .error:visible").count() == 0
    page.click('#tree .node[data-name="try"] > .row')  # its details: no empty log box
    page.wait_for_selector("#detail:visible")
    assert page.locator("#detail-no-logs").is_visible()
    assert not page.locator("#detail-logs").is_visible()


def test_a_run_that_logged_errors_says_so_without_failing(page: Page, people: httpx.Client) -> None:
    run_id = start_from_page(page, base_of(people), "logs_errors", "{}")
    wait_for_status(page, "success")
    assert page.text_content("#run-status") == "done"
    page.wait_for_selector("#run-logged:not([hidden])")
    assert page.text_content("#run-logged") == "2 errors logged"
    page.wait_for_selector(f'.run-item[data-run-id="{run_id}"][data-logged="yes"]')
    assert "failed" not in (page.text_content("#run-counts") or "")
    page.goto(f"{base_of(people)}/ui")  # a fresh page, the run not opened: the summary says so
    page.wait_for_selector(f'#overview-rows tr[data-run-id="{run_id}"][data-logged="yes"]')
    row = page.locator("#overview-rows tr", has=page.locator(f'code[title="{run_id}"]'))
    assert (row.locator("td").last.text_content() or "") == "2 errors logged"


def test_before_a_run_is_opened_the_right_pane_lists_the_runs(
    page: Page, people: httpx.Client
) -> None:
    run_id = people.post(
        "/runs", json={"pipeline_name": "slow", "parameters": {"seconds": 4}}
    ).json()["run_id"]
    try:
        page.goto(f"{base_of(people)}/ui")
        row = page.locator("#overview-rows tr", has=page.locator(f'code[title="{run_id}"]'))
        row.wait_for()
        assert page.is_visible("#overview") and page.is_hidden("#run")
        assert row.locator("code").text_content() == run_id[:8]  # a short id, the whole in title
        assert page.is_hidden("#runs")  # listed once: the side list waits for an open run
        started = row.locator("td").nth(3).text_content() or ""
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", started), started  # a date
        first = row.locator("td.duration").text_content()
        took = f'#overview-rows tr[data-run-id="{run_id}"] td.duration'
        page.wait_for_function(
            f"""() => document.querySelector('{took}').textContent !== {first!r}"""
        )
        later = row.locator("td.duration").text_content()
        assert first and later and first.endswith(" s") and first != later  # its age ticks
        shot(page, "ui-overview.png")
        row.locator("a").click()
        page.wait_for_url(f"**/ui/runs/{run_id}")
        assert page.is_hidden("#overview") and page.is_visible("#run")
        item = f'.run-item[data-run-id="{run_id}"]'
        assert page.is_visible("#runs") and page.text_content(f"{item} .run-item-id") == run_id[:8]
        # opened by its address: its parameters come from the pipeline span (allowlisted here)
        page.wait_for_selector("#run-params:not([hidden])")
        assert page.eval_on_selector_all(
            "#run-params dt", "els => els.map(e => e.textContent)"
        ) == ["seconds"]
    finally:
        people.delete(f"/runs/{run_id}")


def test_log_boxes_show_whole_lines_only(page: Page, people: httpx.Client) -> None:
    start_from_page(page, base_of(people), "chatty", '{"lines": 30}')
    wait_for_status(page, "success")
    box = '#tree .node[data-name="talk"] > .row .log-lines'
    page.wait_for_function(f"() => document.querySelector('{box}').childElementCount === 30")
    assert cut_lines(page, box) == 0
    assert round(lines_of(page, f"{box} li:first-child .log-message")) == 1  # a long one, cut
    shot(page, "ui-log-box.png")
    # the details' box too, beside the tree
    page.click('#tree .node[data-name="talk"] > .row .name')
    page.wait_for_selector("#detail:not([hidden])")
    assert page.locator("#detail-logs .log").count() == 30
    assert cut_lines(page, "#detail-logs") == 0
    # scrolled by hand to anywhere, the boxes come to rest on whole lines
    for where in (box, "#detail-logs"):
        for offset in (9, 100, 203):
            assert cut_lines(page, where, offset) == 0, (where, offset)
    shot(page, "ui-log-box-detail.png")


def cut_lines(page: Page, box: str, offset: int | None = None) -> int:
    """Lines of a log box, scrolled to its newest (or by `offset` px from its top, as a wheel
    does), that show only in part (at its top or bottom), once its scrolling came to rest."""
    page.eval_on_selector(
        box,
        "(box, offset) => box.scrollTo({top: offset === null ? box.scrollHeight : offset})",
        offset,
    )
    page.wait_for_function(  # at rest: the same position two frames running
        """box => new Promise(done => requestAnimationFrame(() => {
            const first = box.scrollTop;
            requestAnimationFrame(() => requestAnimationFrame(() => done(box.scrollTop === first)));
        }))""",
        arg=page.query_selector(box),
    )
    cut: int = page.eval_on_selector(
        box,
        """box => {
            const inner = box.getBoundingClientRect();
            const top = inner.top + box.clientTop + parseFloat(getComputedStyle(box).paddingTop);
            const bottom = top + box.clientHeight - parseFloat(getComputedStyle(box).paddingTop)
                - parseFloat(getComputedStyle(box).paddingBottom);
            return [...box.children].filter(li => {
                const r = li.getBoundingClientRect();
                const visible = r.bottom > top + 0.5 && r.top < bottom - 0.5;
                return visible && (r.top < top - 0.5 || r.bottom > bottom + 0.5);
            }).length;
        }""",
    )
    return cut


def test_run_tokens_are_honoured(page: Page, people: httpx.Client) -> None:
    """Under /locked the router requires run tokens: the page keeps the one POST /runs gave."""
    locked = f"{base_of(people)}/locked"
    page.goto(f"{locked}/ui")
    page.wait_for_selector("body[data-forms='yes']")
    page.check('input[name="pipeline"][value="slow"]')
    page.fill('.param[data-field="seconds"] input', "20")
    page.click("#start-button")
    page.wait_for_url("**/ui/runs/*?token=*")
    page.wait_for_selector('#tree .node[data-name="wait"]')  # its events need the token
    run_id = page.url.rsplit("/", 1)[1].split("?")[0]
    assert people.delete(f"/locked/runs/{run_id}").status_code == 404  # no token: no such run
    page.click("#cancel-button")
    wait_for_status(page, "cancelled")


def test_without_an_openapi_document_the_parameters_are_raw_json(page: Page) -> None:
    from fastapi import FastAPI

    from otelstream.fastapi import create_router
    from tests.conftest import make_telemetry

    telemetry = make_telemetry()

    def quick(rows: int = 1) -> None:
        with telemetry.tracer.start_as_current_span("task:load"):
            pass

    app = FastAPI(openapi_url=None)
    app.include_router(
        create_router(
            hub=telemetry.hub, pipelines={"quick": quick}, tracer_provider=telemetry.provider
        )
    )
    try:
        with serving(page, app) as server:
            page.goto(f"{server.url}/ui")
            page.wait_for_selector("body[data-forms='no']")
            assert page.is_visible("#parameters") and page.is_hidden("#param-form")
            assert page.is_disabled("#params-raw")
            page.fill("#parameters", '{"rows": 3}')
            page.click("#start-button")
            wait_for_status(page, "success")
            assert page.eval_on_selector_all(
                "#run-params dt, #run-params dd", "els => els.map(e => e.textContent)"
            ) == ["rows", "3"]
    finally:
        telemetry.provider.shutdown()


def test_a_task_the_run_left_open_is_drawn_ended(page: Page, people: httpx.Client) -> None:
    """A task still going when its run ended (its worker died, or the run did not wait) ends
    in the stream with the run: the page draws it failed, Unfinished, not running under an
    ended run."""
    start_from_page(page, base_of(people), "leaves_a_task", '{"seconds": 5}')
    wait_for_status(page, "success")
    straggler = page.locator('#tree .node[data-name="straggler"]').first
    page.wait_for_selector('#tree .node[data-name="straggler"][data-status="failed"]')
    assert (straggler.get_attribute("data-status"), page.locator("#run-status").text_content()) == (
        "failed",
        "done",
    )
    error = straggler.locator("> .row > .error")
    assert (error.text_content() or "").startswith("Unfinished: the run ended before this task")
    assert page.locator('#tree .node[data-status="running"]').count() == 0
    shot(page, "ui-unfinished-task.png")
