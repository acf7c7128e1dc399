"""What is usual, on the page (issue 31), in a real Chromium against tests/usual.py on a real
uvicorn: the run's header says how long such runs take and about how long is left, a task's
bar has a tick at its usual time, a task past it gets an "overdue" badge while it runs (and
looks ended once it ends), the run turns "slower than usual", and the pipelines list says
each pipeline's usual time. Each task is held by a gate until what the test waits for is on
the page: no assert depends on how fast anything is.

Screenshots go to artifacts/ (not committed): ui-usual-left.png, ui-usual-overdue.png,
ui-usual-ended.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT
from tests.pages import start_from_page, wait_for_status
from tests.usual import LONG, SHARDS, UsualApp, usual_app

if TYPE_CHECKING:
    from playwright.sync_api import Page

ARTIFACTS = ROOT / "artifacts"


@pytest.fixture
def app(page: Page) -> Iterator[UsualApp]:
    with usual_app() as served:
        yield served
        page.goto("about:blank")  # its runs list's stream closes before the server does


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def row(name: str) -> str:
    return f'#tree .node[data-name="{name}"]'


def test_the_header_says_how_long_is_left_and_the_bar_where_the_task_usually_ends(
    page: Page, app: UsualApp
) -> None:
    app.learn("long", LONG)
    start_from_page(page, app.url, "long", "{}")
    page.wait_for_selector(f'{row("load")}[data-status="running"]')
    page.wait_for_selector('#run-usual[data-state="left"]')
    note = page.text_content("#run-usual") or ""
    assert re.fullmatch(r"usually 20\.0 s · about \d+\.\d s left", note), note
    # the list beside it says the pipeline's usual time too
    listed = page.locator(".pipeline", has=page.locator('input[value="long"]'))
    assert listed.locator(".pipeline-usual").text_content() == "usually 20.0 s"
    assert page.locator('.pipeline:has(input[value="shards"]) .pipeline-usual').count() == 0
    # the tick: at the task's usual end on the run's axis, which reaches that far while it runs
    mark = page.locator(f"{row('load')} > .row .usual-mark")
    assert mark.is_visible() and mark.get_attribute("title") == "usually 15.0 s"
    root_mark = page.locator(f"{row('long')} > .row .usual-mark")
    assert root_mark.get_attribute("title") == "usually 20.0 s"  # where such runs end
    where = page.evaluate(
        """() => {
            const node = document.querySelector('#tree .node[data-name="load"]');
            const lane = node.querySelector(':scope > .row .lane').getBoundingClientRect();
            const tick = node.querySelector(':scope > .row .usual-mark').getBoundingClientRect();
            const bar = node.querySelector(':scope > .row .bar').getBoundingClientRect();
            const style = getComputedStyle(document.getElementById('tree'));
            const total = Number(style.getPropertyValue('--total'));
            const mark = node.querySelector('.usual-mark');
            const start = Number(mark.style.getPropertyValue('--start'));
            return {
                at: (tick.left + tick.width / 2 - lane.left) / lane.width,
                expected: (start + 15000) / total,
                barEnd: bar.right, tick: tick.left,
            };
        }"""
    )
    assert where["at"] == pytest.approx(where["expected"], abs=0.01), where
    assert where["barEnd"] <= where["tick"] + 1, where  # running, it has not reached it yet
    assert page.locator(f"{row('load')} .overdue").is_hidden()
    # what is left counts down as the run goes on
    first = float(note.split("about ")[1].split(" s")[0])
    page.wait_for_function(
        """(first) => {
            const note = document.getElementById('run-usual').textContent;
            const found = note.match(/about ([\\d.]+) s/);
            return found !== null && Number(found[1]) < first;
        }""",
        arg=first,
    )
    shot(page, "ui-usual-left.png")
    app.release.set()
    wait_for_status(page, "success")
    page.wait_for_selector('#run-usual[data-state="ended"]')
    assert page.text_content("#run-usual") == "usually 20.0 s"  # what is left: nothing to say
    # the runs before one is opened: each with its pipeline's usual time
    page.goto(f"{app.url}/ui")
    usual = page.locator("#overview-rows tr td.overview-usual")
    usual.wait_for()
    assert usual.text_content() == "usually 20.0 s"
    shot(page, "ui-usual-overview.png")


def test_a_task_past_its_usual_time_is_flagged_overdue_and_the_run_slower_than_usual(
    page: Page, app: UsualApp
) -> None:
    app.learn("shards", SHARDS)
    start_from_page(page, app.url, "shards", "{}")
    badge = f"{row('fetch_shard_0')} > .row .overdue"
    page.wait_for_selector(f"{badge}:not([hidden])")  # the task_overdue arrived
    page.wait_for_selector('#run-usual[data-state="slower"]')
    assert page.text_content(badge) == "overdue"
    assert page.get_attribute(badge, "title") == "usually 0.3 s"
    assert page.get_attribute(row("fetch_shard_0"), "data-status") == "running"
    assert page.get_attribute(row("fetch_shard_0"), "data-overdue") == "running"
    assert page.text_content("#run-usual") == "usually 0.3 s · slower than usual"
    assert page.locator(f"{row('prepare')} > .row .overdue").is_hidden()  # on time: no badge
    assert page.locator(f"{row('shards')} > .row .overdue").is_hidden()  # the run: its header
    shot(page, "ui-usual-overdue.png")
    app.release.set()
    wait_for_status(page, "success")
    page.wait_for_selector(f'{row("fetch_shard_0")}[data-overdue="ended"]')
    assert page.get_attribute(row("fetch_shard_0"), "data-status") == "done"
    assert page.text_content(badge) == "was overdue"
    assert page.text_content("#run-usual") == "usually 0.3 s · was slower than usual"
    # ended, it does not look running: a plain bar, no running status
    look = page.eval_on_selector(
        f"{row('fetch_shard_0')} > .row .bar", "bar => getComputedStyle(bar).backgroundImage"
    )
    assert look == "none", look
    assert page.text_content(f"{row('fetch_shard_0')} > .row .status") == "done"
    shot(page, "ui-usual-ended.png")


def test_a_run_without_a_history_says_nothing_of_it_and_odd_events_are_ignored(
    page: Page, app: UsualApp
) -> None:
    start_from_page(page, app.url, "long", "{}")
    page.wait_for_selector(f'{row("load")}[data-status="running"]')
    # as a newer or a broken server could send them: each ignored, nothing thrown
    page.evaluate(
        """() => {
            const current = otelstream.run;
            const load = [...current.nodes.values()].find((n) => n.name === 'load');
            const odd = [
                {type: 'task_overdue', span_id: 'ffffffffffffffff', name: 'x', running_ms: 5},
                {type: 'task_overdue', span_id: load.spanId, running_ms: '<b>x</b>',
                 expected_duration_ms: '<img src=x onerror=alert(1)>'},
                {type: 'pipeline_overdue', span_id: null},
                {type: 'task_late_in_some_new_way', span_id: load.spanId},
            ];
            for (const event of odd) current.queue.push(event);
            schedule(current);
        }"""
    )
    page.wait_for_selector(f'{row("load")}[data-overdue="running"]')
    assert page.is_hidden("#run-usual")  # no history: no word of what is usual
    assert page.text_content(f"{row('load')} > .row .overdue") == "overdue"
    assert page.get_attribute(f"{row('load')} > .row .overdue", "title") == ""
    assert page.locator(f"{row('load')} > .row .usual-mark").is_hidden()
    assert page.locator("#tree img").count() == 0
    app.release.set()
    wait_for_status(page, "success")
