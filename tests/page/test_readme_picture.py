"""The README's picture of the page, taken here in a real Chromium so it stays current.

A run of `tour` (tests/apps/picture_app.py) caught mid-way: a failed task, a task with its log
lines and its progress bar part way. The test checks the page shows all three, then writes
docs/assets/page.png, which the README shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import ROOT, app_process
from tests.pages import start_from_page

if TYPE_CHECKING:
    from playwright.sync_api import Page

PICTURE = ROOT / "docs" / "assets" / "page.png"
READ = '#tree .node[data-name="read_files"]'


@pytest.fixture(scope="module")
def example() -> Iterator[str]:
    env = {"OTELSTREAM_ATTRIBUTE_ALLOWLIST": "files", "OTELSTREAM_LOG_LEVEL": "INFO"}
    with app_process("tests.apps.picture_app:app", **env) as url:
        yield url


def test_the_readmes_picture_shows_a_failed_task_logs_and_progress(
    page: Page, example: str
) -> None:
    start_from_page(page, example, "tour", '{"files": 8, "seconds": 0.4}')
    page.wait_for_function(
        f"() => document.querySelectorAll('{READ} > .row .log').length >= 3", timeout=20_000
    )
    assert page.get_attribute('#tree .node[data-name="validate"]', "data-status") == "failed"
    assert page.get_attribute(READ, "data-status") == "running"
    page.wait_for_selector(f"{READ} > .row > .progress:not([hidden])")
    PICTURE.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(PICTURE))
    assert PICTURE.stat().st_size > 10_000  # a picture, not a blank page
    with httpx.Client(base_url=example, timeout=10) as client:  # let the run end before the app
        run_id = page.url.rsplit("/", 1)[1]
        for _ in range(200):
            if client.get(f"/runs/{run_id}").json()["status"] != "running":
                break
            page.wait_for_timeout(100)
