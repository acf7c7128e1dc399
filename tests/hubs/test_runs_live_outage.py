"""The runs stream after a Redis outage (issue 28.12): a run started once Redis is back is on
`/runs/live`, for a reader that reconnects with the id it had read (as the page's EventSource
does) and for a new one, on the worker that runs it and on another."""

from __future__ import annotations

import json
import time

import httpx

from otelstream.testing import RedisServer, iter_sse
from tests.conftest import workers_on

QUICK = {"pipeline_name": "example", "parameters": {"seconds": 0}}


def started_runs(client: httpx.Client, last_id: str | None, want: str) -> tuple[list[str], str]:
    """Run ids of the run_started events read until `want` is among them; and the last id."""
    headers = {} if last_id is None else {"Last-Event-ID": last_id}
    seen: list[str] = []
    for message in iter_sse(client, "GET", "/runs/live", headers=headers):
        event = json.loads(message.data)
        last_id = message.id or last_id
        if event["type"] == "run_started":
            seen.append(event["run_id"])
        if want in seen:
            break
    assert last_id is not None
    return seen, last_id


def wait_until_up(client: httpx.Client) -> None:
    deadline = time.monotonic() + 20
    while client.post("/runs", json=QUICK).status_code == 503:
        assert time.monotonic() < deadline, "the worker never saw Redis again"
        time.sleep(0.1)


def test_a_run_started_after_an_outage_is_on_the_runs_stream(empty_redis: RedisServer) -> None:
    with workers_on(empty_redis.url) as (a, b):
        before = [a.post("/runs", json=QUICK).json()["run_id"] for _ in range(3)]
        _, last_id = started_runs(b, None, before[-1])
        empty_redis.kill()
        empty_redis.start()  # empty, as after a crash: the runs stream numbers from 1 again
        wait_until_up(a)
        after = a.post("/runs", json=QUICK).json()["run_id"]
        for watcher in (a, b):
            resumed, _ = started_runs(watcher, last_id, after)  # the page's reconnect
            assert after in resumed
            fresh, _ = started_runs(watcher, None, after)
            assert after in fresh
