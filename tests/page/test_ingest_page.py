"""The live page (a real headless Chromium) with spans of another service: its service shown,
a child that came first under a placeholder that becomes its parent when the parent arrives."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.ingest.test_ingest import answer, export, post, running, serve_ingest, span
from tests.pages import rows

if TYPE_CHECKING:
    from playwright.sync_api import Page


def test_the_page_places_a_services_spans_as_they_arrive(page: Page) -> None:
    for app in serve_ingest():
        run_id, root = running(app)
        page.goto(f"{app.url}/ui/runs/{run_id}")
        page.wait_for_selector('#tree .node[data-name="before"]')
        answer(post(app, export(span(run_id, 62, 61, "query"), service="billing")))
        page.wait_for_selector('#tree .node[data-name="query"][data-status="done"]')
        assert rows(page)[-2:] == [("…", "waiting", 1), ("query", "done", 2)]
        answer(post(app, export(span(run_id, 61, root, "POST /charge"), service="billing")))
        page.wait_for_selector('#tree .node[data-name="POST /charge"]')
        assert rows(page)[-2:] == [("POST /charge", "done", 1), ("query", "done", 2)]
        service = page.text_content('#tree .node[data-name="query"] > .row .service')
        assert service == "billing"
        app.gate.opened.set()
