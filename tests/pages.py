"""The live page's test helpers: a real headless Chromium through Playwright, and the page's
rows read back. `browser` and `page` are fixtures (re-exported by conftest.py, so every test
module has them); the rest are plain functions.

Without Chromium or Playwright the browser tests skip, except under CI (the `CI` variable set),
where a missing browser is a failure: the page must be tested.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from otelstream.testing import UvicornServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page
    from starlette.types import ASGIApp

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 15_000  # every wait in the page has this bound


def _missing_browser() -> tuple[str | None, str]:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None, "Playwright for Python is not installed (it is in the dev group)"
    chromium = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if chromium is None:
        return None, "no Chromium found: install Debian's `chromium` or set CHROMIUM=/path"
    return chromium, ""


@pytest.fixture(scope="module")  # not longer: its loop in this thread stops asyncio.run
def browser() -> Iterator[Browser]:
    chromium, problem = _missing_browser()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests cannot run under CI: {problem}", pytrace=False)
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; any script error or CSP violation in it fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    yield opened
    context.close()
    assert not problems, problems


@contextmanager
def serving(page: Page, app: ASGIApp) -> Iterator[UvicornServer]:
    """`app` on a real uvicorn in this process, for `page`: the page leaves it before it stops
    (the page's runs list keeps a stream open, which the server's exit would have to cut)."""
    with UvicornServer(app) as server:
        try:
            yield server
        finally:
            page.goto("about:blank")


# -- reading the page --------------------------------------------------------------------------


def rows(page: Page) -> list[tuple[str, str, int]]:
    """(name, status, depth) of every row, in the order the page shows them."""
    result: list[tuple[str, str, int]] = page.eval_on_selector_all(
        "#tree .node",
        """nodes => nodes.map(n => [
            n.querySelector(':scope > .row .name').textContent,
            n.dataset.status,
            Number(n.querySelector(':scope > .row').style.getPropertyValue('--depth')),
        ])""",
    )
    return [tuple(row) for row in result]  # type: ignore[misc]


def start_from_page(page: Page, base: str, pipeline: str, parameters: str) -> str:
    page.goto(f"{base}/ui")
    page.check(f'input[name="pipeline"][value="{pipeline}"]')
    as_json(page)
    page.fill("#parameters", parameters)
    page.click("#start-button")
    page.wait_for_url("**/ui/runs/*")
    run_id = page.url.rsplit("/", 1)[1]
    assert len(run_id) == 32
    return run_id


def as_json(page: Page) -> None:
    """Once the page has looked for the pipelines' forms: their parameters as raw JSON."""
    page.wait_for_selector("body[data-forms]")
    if page.is_enabled("#params-raw") and not page.is_checked("#params-raw"):
        page.check("#params-raw")


def wait_for_status(page: Page, status: str) -> None:
    page.wait_for_selector(f'#run-status[data-status="{status}"]')
