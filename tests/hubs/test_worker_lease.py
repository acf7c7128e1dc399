"""Runs that outlive their worker end: real uvicorn workers on a real redis-server (and on the
real three-master cluster), one of them killed with SIGKILL or paused with SIGSTOP.

Each worker renews a lease in Redis (`OTELSTREAM_WORKER_LEASE_SECONDS`, short here); when the
worker running a run stops renewing it, another ends the run as failed (`WorkerLost`), exactly
once, and frees its `max_active_runs` slot. A pause shorter than the lease is no death; a
worker resumed after its lease lapsed publishes nothing more into the runs ended for it.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from otelstream.testing import RedisClusterServers, iter_sse, read_events
from tests.conftest import EXAMPLE_SHAPE, app_subprocess, app_subprocesses, shape
from tests.redis_server import RedisServer

APP = "tests.apps.redis_example:app"
LEASE = 3.0
QUICK = {"pipeline_name": "example", "parameters": {"seconds": 0}}
LONG = {"pipeline_name": "example", "parameters": {"seconds": 30}}
SHORT = {"pipeline_name": "example", "parameters": {"seconds": 1}}


@pytest.fixture(params=["redis", "cluster"])
def hub_url(request: pytest.FixtureRequest) -> str:
    name = "empty_redis" if request.param == "redis" else "empty_redis_cluster"
    servers: RedisServer | RedisClusterServers = request.getfixturevalue(name)
    return servers.url


@pytest.fixture
def redis_url(empty_redis: RedisServer) -> str:
    return empty_redis.url


def worker_env(url: str) -> dict[str, str]:
    return {
        "OTELSTREAM_HUB": url,
        "OTELSTREAM_WORKER_LEASE_SECONDS": str(LEASE),
        "OTELSTREAM_MAX_ACTIVE_RUNS": "1",  # so a run that never ended would block every other
    }


class Watcher(threading.Thread):
    """Reads a run's stream on one worker until it closes."""

    def __init__(self, client: httpx.Client, run_id: str) -> None:
        super().__init__(daemon=True)
        self.client, self.run_id = client, run_id
        self.events: list[dict[str, Any]] = []
        self.first = threading.Event()
        self.closed_at = 0.0
        self.start()

    def run(self) -> None:
        for message in iter_sse(self.client, "GET", f"/runs/{self.run_id}/events"):
            self.events.append(json.loads(message.data))
            self.first.set()
        self.closed_at = time.monotonic()


def terminals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == "pipeline_completed"]


def assert_every_task_ended(events: list[dict[str, Any]]) -> None:
    """Every task the dead worker left running ends in the stream, before the run: at least
    one (it was killed mid-task), as Unfinished, because its worker died."""
    ended_at = {e["span_id"]: i for i, e in enumerate(events) if e["type"] in TASK_ENDS}
    last = len(events) - 1
    assert events[last]["type"] == "pipeline_completed"
    started = [e["span_id"] for e in events if e["type"] == "task_started"]
    assert all(ended_at.get(span_id, last) < last for span_id in started), events
    unfinished = [e for e in events if e.get("error_type") == "Unfinished"]
    assert unfinished and all(e["type"] == "task_error" for e in unfinished), events
    assert all("its worker died" in e["error"] for e in unfinished), unfinished


TASK_ENDS = ("task_completed", "task_error")


def assert_worker_lost(client: httpx.Client, run_id: str) -> None:
    """The run's stream, its JSON and the runs list say the same: ended, WorkerLost."""
    events = read_events(client, "GET", f"/runs/{run_id}/events")
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    (end,) = terminals(events)
    assert (end["status"], end["error_type"]) == ("error", "WorkerLost"), end
    assert "lease" in end["error"] and "OTELSTREAM_WORKER_LEASE_SECONDS" in end["error"]
    assert_every_task_ended(events)
    run = client.get(f"/runs/{run_id}").json()
    assert (run["status"], run["error_type"]) == ("error", "WorkerLost"), run
    (listed,) = [r for r in client.get("/runs").json()["runs"] if r["run_id"] == run_id]
    assert (listed["status"], listed["error_type"]) == ("error", "WorkerLost"), listed


@pytest.mark.timeout(300)
def test_a_killed_workers_run_is_ended_once_by_the_survivors_and_frees_its_slot(
    hub_url: str,
) -> None:
    env = worker_env(hub_url)
    with ExitStack() as stack:
        workers = stack.enter_context(app_subprocesses(APP, 3, **env))
        (_, process_a), _, _ = workers
        a, b, c = (stack.enter_context(httpx.Client(base_url=u, timeout=20)) for u, _ in workers)
        run_id = a.post("/runs", json=LONG).json()["run_id"]
        watchers = [Watcher(b, run_id), Watcher(c, run_id)]
        assert all(w.first.wait(10) for w in watchers)
        # the slot is taken: a second run is traced but not streamed
        refused = b.post("/runs", json=QUICK).json()["run_id"]
        time.sleep(0.5)
        assert b.get(f"/runs/{refused}").status_code == 404

        os.kill(process_a.pid, signal.SIGKILL)
        killed = time.monotonic()
        for watcher in watchers:
            watcher.join(LEASE + 5 + 5)
            assert not watcher.is_alive(), "the stream did not end after its worker died"
            assert watcher.closed_at - killed <= LEASE + 5, watcher.closed_at - killed
            (end,) = terminals(watcher.events)
            assert (end["status"], end["error_type"]) == ("error", "WorkerLost"), end
            assert_every_task_ended(watcher.events)  # live, as a page or `tail` shows it
        for client in (b, c):
            assert_worker_lost(client, run_id)

        # the slot is free again: a new run streams whole
        assert shape(read_events(c, "POST", "/run-workflow", json=QUICK)) == EXAMPLE_SHAPE

        # the killed worker comes back (a new process): the run stays ended, once
        with (
            app_subprocess(APP, **env) as (url_again, _),
            httpx.Client(base_url=url_again, timeout=20) as again,
        ):
            time.sleep(LEASE * 1.5)  # a few lease renewals and claims
            assert_worker_lost(again, run_id)
            assert_worker_lost(b, run_id)


@pytest.mark.timeout(200)
def test_a_worker_paused_for_less_than_its_lease_finishes_its_run(redis_url: str) -> None:
    env = worker_env(redis_url)
    with (
        app_subprocesses(APP, 2, **env) as [(url_a, process_a), (url_b, _)],
        httpx.Client(base_url=url_a, timeout=20) as a,
        httpx.Client(base_url=url_b, timeout=20) as b,
    ):
        run_id = a.post("/runs", json=SHORT).json()["run_id"]
        watcher = Watcher(b, run_id)
        assert watcher.first.wait(10)
        os.kill(process_a.pid, signal.SIGSTOP)
        try:
            time.sleep(LEASE * 0.6)
        finally:
            os.kill(process_a.pid, signal.SIGCONT)
        watcher.join(30)
        assert not watcher.is_alive()
        (end,) = terminals(watcher.events)
        assert end["status"] == "success", end
        assert shape(watcher.events) == EXAMPLE_SHAPE
        assert b.get(f"/runs/{run_id}").json()["status"] == "success"


@pytest.mark.timeout(200)
def test_a_worker_resumed_after_its_lease_lapsed_stops_publishing_and_says_so(
    redis_url: str,
) -> None:
    env = worker_env(redis_url)
    with (
        app_subprocesses(APP, 2, **env) as [(url_a, process_a), (url_b, _)],
        httpx.Client(base_url=url_a, timeout=20) as a,
        httpx.Client(base_url=url_b, timeout=20) as b,
    ):
        run_id = a.post("/runs", json=SHORT).json()["run_id"]
        watcher = Watcher(b, run_id)
        assert watcher.first.wait(10)
        os.kill(process_a.pid, signal.SIGSTOP)
        try:
            watcher.join(LEASE + 10)
            assert not watcher.is_alive(), "the paused worker's run was not ended"
        finally:
            os.kill(process_a.pid, signal.SIGCONT)
        time.sleep(4)  # the pipeline goes on and ends in the resumed worker
        assert_worker_lost(b, run_id)
        assert_worker_lost(a, run_id)
        process_a.terminate()
        assert process_a.stdout is not None
        output = process_a.stdout.read()
    assert f"another worker ended its run(s) {run_id} as WorkerLost" in output, output


@pytest.mark.timeout(200)
def test_a_delete_on_an_orphan_ends_it_at_once(redis_url: str) -> None:
    """B renews rarely (a long lease of its own), so no renewal of B's claims A's run first:
    the DELETE finds A lapsed and ends the run there and then, instead of a 202 to nobody."""
    with (
        app_subprocess(APP, **worker_env(redis_url)) as (url_a, process_a),
        app_subprocess(
            APP, **{**worker_env(redis_url), "OTELSTREAM_WORKER_LEASE_SECONDS": "300"}
        ) as (url_b, _),
        httpx.Client(base_url=url_a, timeout=20) as a,
        httpx.Client(base_url=url_b, timeout=20) as b,
    ):
        run_id = a.post("/runs", json=LONG).json()["run_id"]
        watcher = Watcher(b, run_id)
        assert watcher.first.wait(10)
        os.kill(process_a.pid, signal.SIGKILL)
        time.sleep(LEASE * 4 / 3 + 1)  # A's lease and a renewal interval: it has lapsed
        assert watcher.is_alive(), "a renewal of B's ended the run already: the test proves less"
        answer = b.delete(f"/runs/{run_id}")
        assert answer.status_code == 409 and "ended (error)" in answer.text, answer.text
        watcher.join(10)
        assert not watcher.is_alive()
        (end,) = terminals(watcher.events)
        assert end["error_type"] == "WorkerLost"
        assert_worker_lost(b, run_id)


def test_a_renewal_says_runs_were_taken_only_after_another_worker_claimed_some(
    redis_url: str,
) -> None:
    """The renewal script (`BEAT`) on a real Redis: a run this worker names that has ended and
    retired (its end stored by this worker while the renewal was on its way) is not reported
    as taken, unless another worker did claim runs of this one; then it is, once."""
    import redis as redis_py

    from otelstream.hubs.redis._beat import BEAT

    names = ("workers", "owners", "active", "finished", "robbed", "claimed", "heard")
    keys = [f"t:{{runs}}:{name}" for name in names]
    me, other = "host:1:aaaaaa", "host:2:bbbbbb"
    with redis_py.Redis.from_url(redis_url) as client:
        client.zadd(keys[3], {"retired": 1})  # ended and retired: no owner any more
        client.hset(keys[1], mapping={"mine": me})
        client.zadd(keys[2], {"mine": 1, "retired": 1})

        def beat() -> list[list[bytes]]:
            args = (me, "20000", "", "86400000", "0", 2, "mine", "retired")
            return client.eval(BEAT, len(keys), *keys, *args)  # type: ignore[no-any-return]

        assert beat() == [[], []]  # nobody claimed anything: nothing looked up, nothing taken
        client.hset(keys[1], "mine", "!" + other)  # another worker claimed it (this one lapsed)
        client.zadd(keys[4], {me: 1})  # as the claim leaves it
        assert beat() == [[b"mine", b"retired"], []]
        assert beat() == [[], []]  # said once
