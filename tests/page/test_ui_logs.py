"""The page in a real Chromium: a task's log lines and progress while it runs, the live runs
list, and the detail panel of a clicked task (the example's `ingest` pipeline)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import ROOT, app_process
from tests.pages import rows, start_from_page, wait_for_status

if TYPE_CHECKING:
    from playwright.sync_api import Page

READ = '#tree .node[data-name="read_files"] > .row'


@pytest.fixture(scope="module")
def example() -> Iterator[httpx.Client]:
    with (
        app_process(
            "tests.apps.ui_example:app",
            OTELSTREAM_ATTRIBUTE_ALLOWLIST="files",
            OTELSTREAM_LOG_LEVEL="INFO",
        ) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


def log_lines(view: Page, selector: str) -> list[tuple[str, str]]:
    found: list[list[str]] = view.eval_on_selector_all(
        f"{selector} .log",
        "els => els.map(e => [e.dataset.level, e.querySelector('.log-message').textContent])",
    )
    return [(level, message) for level, message in found]


def test_a_task_shows_its_logs_and_progress_while_it_runs(
    page: Page,
    example: httpx.Client,
) -> None:
    base = str(example.base_url).rstrip("/")
    run_id = start_from_page(page, base, "ingest", '{"files": 6, "seconds": 0.4}')
    # mid-run: some files read, the task still running, its bar part way
    page.wait_for_function(
        f"() => document.querySelectorAll('{READ} .log').length >= 2", timeout=15_000
    )
    assert page.get_attribute('#tree .node[data-name="read_files"]', "data-status") == "running"
    assert log_lines(page, READ)[:2] == [
        ("INFO", "reading part-001.csv"),
        ("INFO", "reading part-002.csv"),
    ]
    page.wait_for_selector(f"{READ} > .progress:not([hidden])")
    text = page.text_content(f"{READ} .progress-text") or ""
    done = int(text.split("/")[0])
    assert 1 <= done < 6 and text.endswith(f"/6 · part-{done:03d}.csv"), text
    fraction = page.eval_on_selector(
        f"{READ} .progress-fill", "e => Number(e.style.getPropertyValue('--fraction'))"
    )
    assert 0 < fraction < 1
    # the live runs list has the run, running, marked as the open one
    item = page.locator(f'#runs-list .run-item[data-run-id="{run_id}"]')
    item.wait_for()
    assert item.get_attribute("aria-current") == "true"
    assert item.get_attribute("data-status") == "running"
    (ROOT / "artifacts").mkdir(exist_ok=True)
    page.screenshot(path=str(ROOT / "artifacts" / "ui-logs-running.png"), full_page=True)

    wait_for_status(page, "success")
    assert rows(page) == [("ingest", "done", 0), ("read_files", "done", 1), ("index", "done", 1)]
    assert page.text_content(f"{READ} .progress-text") == "6/6 · part-006.csv"
    assert len(log_lines(page, READ)) == 6
    assert page.text_content(f"{READ} .logs-summary") == "6 log lines"
    index = '#tree .node[data-name="index"] > .row'
    assert log_lines(page, index) == [("INFO", "indexed 6 files")]
    page.wait_for_selector(f'#runs-list .run-item[data-run-id="{run_id}"][data-status="success"]')

    # the log lines collapse, and open again
    page.click(f"{READ} .logs-summary")
    assert page.locator(f"{READ} .log-lines").is_hidden()
    page.click(f"{READ} .logs-summary")
    assert page.locator(f"{READ} .log-lines").is_visible()

    # a click on the task opens its details: timing, allowed attributes, its logs
    page.click(f"{READ} .name")
    page.wait_for_selector("#detail:not([hidden])")
    assert page.text_content("#detail-name") == "read_files"
    terms = page.eval_on_selector_all("#detail-timing dt", "els => els.map(e => e.textContent)")
    assert {"started", "ended", "duration", "progress"} <= set(terms)
    attributes = page.eval_on_selector_all(
        "#detail-attributes dt, #detail-attributes dd", "els => els.map(e => e.textContent)"
    )
    assert attributes == ["files", "6"]
    assert page.locator("#detail-logs .log").count() == 6
    assert page.is_hidden("#detail-error")
    # beside the tree, not below it: the page does not grow by the details' height
    tree = page.locator(".waterfall").bounding_box()
    panel = page.locator("#detail").bounding_box()
    assert tree is not None and panel is not None
    assert panel["x"] >= tree["x"] + tree["width"] and abs(panel["y"] - tree["y"]) < 2
    page.screenshot(path=str(ROOT / "artifacts" / "ui-logs-detail.png"), full_page=True)
    page.click("#detail-close")
    assert page.is_hidden("#detail")


def test_the_runs_list_is_live_and_opens_a_run(
    page: Page,
    example: httpx.Client,
) -> None:
    base = str(example.base_url).rstrip("/")
    page.goto(f"{base}/ui")
    first = example.post("/runs", json={"pipeline_name": "nested", "parameters": {"seconds": 0}})
    first_id = first.json()["run_id"]
    row = page.locator(f'#overview-rows tr[data-run-id="{first_id}"][data-status="success"]')
    row.wait_for()  # arrived through GET /runs/live, with no reload
    assert page.is_hidden("#runs")  # the landing page lists the runs once: in its table
    second = example.post("/runs", json={"pipeline_name": "failing", "parameters": {"seconds": 0}})
    second_id = second.json()["run_id"]
    page.wait_for_selector(f'#overview-rows tr[data-run-id="{second_id}"][data-status="error"]')
    ids = page.eval_on_selector_all("#overview-rows tr", "els => els.map(e => e.dataset.runId)")
    assert ids.index(second_id) < ids.index(first_id)  # newest first
    row.locator("a").click()
    page.wait_for_url(f"**/ui/runs/{first_id}")
    wait_for_status(page, "success")
    assert rows(page)[0] == ("nested", "done", 0)
    item = page.locator(f'#runs-list .run-item[data-run-id="{first_id}"]')
    assert item.is_visible() and item.get_attribute("aria-current") == "true"  # beside the run
    ids = page.eval_on_selector_all("#runs-list .run-item", "els => els.map(e => e.dataset.runId)")
    assert ids.index(second_id) < ids.index(first_id)


def test_log_levels_are_coloured(page: Page, example: httpx.Client) -> None:
    base = str(example.base_url).rstrip("/")
    start_from_page(page, base, "ingest", '{"files": 2, "seconds": 0}')
    wait_for_status(page, "success")
    index = '#tree .node[data-name="index"] > .row'
    assert log_lines(page, index) == [
        ("WARN", "only 2 files: the index will be small"),
        ("INFO", "indexed 2 files"),
    ]
    colours = page.eval_on_selector_all(
        f"{index} .log .log-level", "els => els.map(e => getComputedStyle(e).color)"
    )
    assert colours[0] != colours[1]  # WARN in amber, INFO in blue
    assert colours[0] == "rgb(183, 121, 31)"
