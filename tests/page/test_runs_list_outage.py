"""The page's runs list lives through a Redis outage (issue 28.12): its stream is refused (503)
while Redis is down, and the browser's EventSource gives up on an error status; the page tries
again itself, so a run started once Redis is back is listed, in a real Chromium."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import httpx

from otelstream.testing import RedisServer
from tests.conftest import REDIS_APP, app_process

if TYPE_CHECKING:
    from playwright.sync_api import Page

QUICK = {"pipeline_name": "example", "parameters": {"seconds": 0}}


def listed(run_id: str) -> str:
    return f'#overview-rows [data-run-id="{run_id}"]'


def test_a_run_started_after_an_outage_is_listed(page: Page, empty_redis: RedisServer) -> None:
    with (
        app_process(REDIS_APP, OTELSTREAM_HUB=empty_redis.url) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        page.goto(f"{url}/ui")
        before = client.post("/runs", json=QUICK).json()["run_id"]
        page.wait_for_selector(listed(before), state="attached")
        empty_redis.kill()
        assert client.post("/runs", json=QUICK).status_code == 503
        time.sleep(3)  # the outage the issue saw: the page's stream is refused meanwhile
        page.wait_for_function(
            "() => document.getElementById('overview-empty').textContent.includes('trying again')"
            " || document.getElementById('runs-empty').textContent.includes('trying again')"
        )
        empty_redis.start()
        deadline = time.monotonic() + 20
        while (started := client.post("/runs", json=QUICK)).status_code == 503:
            assert time.monotonic() < deadline, "the worker never saw Redis again"
            time.sleep(0.1)
        after = started.json()["run_id"]
        page.wait_for_selector(listed(after), state="attached", timeout=20_000)
