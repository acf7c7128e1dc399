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


def test_a_services_log_record_in_a_local_task_is_drawn_as_the_services_line(
    page: Page,
) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

    from tests.ingest.test_ingest import PROTOBUF

    for app in serve_ingest():
        run_id, root = running(app)
        page.goto(f"{app.url}/ui/runs/{run_id}")
        page.wait_for_selector('#tree .node[data-name="before"]')
        record = LogRecord(
            time_unix_nano=1_700_000_000_100_000_000,
            severity_number=13,  # type: ignore[arg-type]
            body=AnyValue(string_value="price feed slow"),
            trace_id=bytes.fromhex(run_id),
            span_id=int(root, 16).to_bytes(8, "big"),  # the local root's span: no span of its own
        )
        service = [KeyValue(key="service.name", value=AnyValue(string_value="pricing"))]
        logs = ExportLogsServiceRequest(
            resource_logs=[
                ResourceLogs(
                    resource={"attributes": service},
                    scope_logs=[
                        ScopeLogs(
                            scope=InstrumentationScope(name="pricing.feed"), log_records=[record]
                        )
                    ],
                )
            ]
        )
        sent = app.client.post("/v1/logs", content=logs.SerializeToString(), headers=PROTOBUF)
        assert sent.status_code == 200
        line = page.locator("#tree .log", has_text="price feed slow")
        line.wait_for()
        assert line.locator(".log-service").text_content() == "pricing"
        assert line.get_attribute("title") == "pricing · pricing.feed"
        from tests.page.test_ui_people import shot

        shot(page, "ui-service-log.png")
        app.gate.opened.set()
