"""Runs across a pause of Redis itself (SIGSTOP of a real redis-server, past the worker lease):
two real uvicorn workers on it; every run ends once, and both workers say the same of it.

A pause of Redis is no death of the workers: Redis heard nobody while it was stopped, so no
lease counts as lapsed for that time (see `hubs/redis/_owners.py`), and the runs of live
workers go on and end as they would have. A worker that is itself paused past its lease is
another matter: its runs are ended `WorkerLost`, once, by the other, and the resumed worker
answers `GET` and `DELETE` as the other does. A claim whose reply was lost in the pause (Redis
ran the script, the connection timed out) is found again at the claimer's next renewal.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from otelstream.testing import read_events, wait_for_run
from tests.conftest import app_subprocesses, workers_on
from tests.redis_server import RedisServer

APP = "tests.apps.redis_example:app"
LEASE = 1.5
SPAN = LEASE * 4 / 3  # a lease and a renewal interval: when an unrenewed lease has lapsed
PAUSE = 7.0  # past the span, and past the hub's socket timeout (5 s): replies are lost
ENV = {"OTELSTREAM_WORKER_LEASE_SECONDS": str(LEASE)}


def run_for(seconds: float) -> dict[str, Any]:
    """The example pipeline: two tasks of `seconds / 2` each."""
    return {"pipeline_name": "example", "parameters": {"seconds": seconds / 2}}


@contextmanager
def paused(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def start(client: httpx.Client, seconds: float, *others: httpx.Client) -> str:
    """A run started on `client`, once every worker sees it running."""
    run_id: str = client.post("/runs", json=run_for(seconds)).json()["run_id"]
    deadline = time.monotonic() + 10
    for other in (client, *others):
        while other.get(f"/runs/{run_id}").status_code != 200:
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
    return run_id


def ended_alike(run_id: str, clients: list[httpx.Client], timeout: float) -> dict[str, Any]:
    """The run ends, on every worker the same; its stream ends with its one end, on each."""
    runs = [wait_for_run(client, run_id, timeout=timeout) for client in clients]
    runs = [client.get(f"/runs/{run_id}").json() for client in clients]
    first = runs[0]
    for run in runs:
        assert (run["status"], run.get("error_type")) == (first["status"], first.get("error_type"))
    for client in clients:
        events = read_events(client, "GET", f"/runs/{run_id}/events")
        ends = [event for event in events if event["type"] == "pipeline_completed"]
        assert len(ends) == 1 and events[-1] is ends[0], events
        assert ends[0]["status"] == first["status"], (ends[0], first)
        answer = client.delete(f"/runs/{run_id}")  # every worker: it has ended, and how
        assert answer.status_code == 409, answer.text
        status = re.search(r"ended \((\w+)\)", answer.json()["detail"])
        assert status is not None and status.group(1) == first["status"], answer.text
    return first


@pytest.mark.timeout(120)
def test_runs_go_on_and_end_once_alike_after_redis_paused_past_the_lease(
    empty_redis: RedisServer,
) -> None:
    with workers_on(empty_redis.url, **ENV) as clients:
        a, b = clients
        runs = [start(a, PAUSE + 2, b), start(b, PAUSE + 2, a)]
        cancelled = start(b, 60, a)
        with paused(empty_redis.pid):
            time.sleep(PAUSE)  # the pause itself is what is tested
        answer = a.delete(f"/runs/{cancelled}")  # asks B, which runs it, over Redis
        assert answer.status_code == 202, answer.text
        assert ended_alike(cancelled, clients, SPAN + 10)["status"] == "cancelled"
        for run_id in runs:  # a pause of Redis is no death of its workers
            assert ended_alike(run_id, clients, PAUSE + SPAN + 10)["status"] == "success"


@pytest.mark.timeout(120)
def test_a_worker_paused_with_redis_loses_its_run_once_and_both_workers_agree(
    empty_redis: RedisServer,
) -> None:
    env = {**ENV, "OTELSTREAM_HUB": empty_redis.url}
    with (
        app_subprocesses(APP, 2, **env) as [(url_a, _), (url_b, process_b)],
        httpx.Client(base_url=url_a, timeout=20) as a,
        httpx.Client(base_url=url_b, timeout=20) as b,
    ):
        lost, kept = start(b, 60, a), start(a, PAUSE + 4, b)
        with paused(process_b.pid):
            with paused(empty_redis.pid):
                time.sleep(PAUSE)  # the pause itself is what is tested
            run = wait_for_run(a, lost, timeout=SPAN + 10)  # B is still stopped: it is lost
            assert (run["status"], run["error_type"]) == ("error", "WorkerLost"), run
        assert ended_alike(lost, [a, b], SPAN + 10)["error_type"] == "WorkerLost"
        assert ended_alike(kept, [a, b], PAUSE + SPAN + 10)["status"] == "success"


def test_a_claim_whose_reply_was_lost_is_ended_at_the_claimers_next_renewal(
    empty_redis: RedisServer,
) -> None:
    """The renewal script (`BEAT`) on a real Redis: a claim it made whose reply never came back
    (the connection timed out while Redis was paused) is in `{runs}:claimed`, so the claimer's
    next renewal names it again, until the run has retired; then it is forgotten."""
    import redis as redis_py

    from otelstream.hubs.redis._beat import BEAT

    names = ("workers", "owners", "active", "finished", "robbed", "claimed", "heard")
    keys = [f"t:{{runs}}:{name}" for name in names]
    me, other = "host:1:aaaaaa", "host:2:bbbbbb"
    with redis_py.Redis.from_url(empty_redis.url) as client:
        client.zadd(keys[0], {other: 1})  # lapsed long ago
        client.hset(keys[1], "orphan", other)
        client.zadd(keys[2], {"orphan": 1})

        def beat() -> Any:
            args = (me, "20000", "", "86400000", "0", 0)
            return client.eval(BEAT, len(keys), *keys, *args)

        beat()  # the reply is dropped: the claimer never hears of its claim
        assert client.hget(keys[1], "orphan") == b"!" + me.encode()
        assert beat() == [[], [b"orphan", b""]]  # named again, as a claim of its own
        assert beat() == [[], [b"orphan", b""]]  # and again, until its end is stored
        client.hdel(keys[1], "orphan")  # retired (RETIRE removes the owner)
        assert beat() == [[], []]
        assert client.scard(keys[5]) == 0


def test_a_renewal_counts_no_lease_against_a_worker_while_redis_heard_nobody(
    empty_redis: RedisServer,
) -> None:
    """`BEAT` on a real Redis: after a minute in which Redis heard no renewal at all (it was
    stopped), a worker whose lease lapsed in that minute is not lapsed: nothing is claimed.
    And a renewal after one whose reply was lost looks at each of its runs (`look`): the reply
    that said one was taken may be the one lost."""
    import redis as redis_py

    from otelstream.hubs.redis._beat import BEAT

    names = ("workers", "owners", "active", "finished", "robbed", "claimed", "heard")
    keys = [f"t:{{runs}}:{name}" for name in names]
    me, other = "host:1:aaaaaa", "host:2:bbbbbb"
    with redis_py.Redis.from_url(empty_redis.url) as client:
        seconds, micros = client.time()
        now = seconds * 1000 + micros // 1000
        client.set(keys[6], now - 60_000)  # the last renewal Redis heard, a minute ago
        client.zadd(keys[0], {other: now - 1_000})  # lapsed during that minute
        client.hset(keys[1], mapping={"theirs": other, "mine": "!" + other})
        client.zadd(keys[2], {"theirs": 1, "mine": 1})

        def beat(look: str) -> Any:
            args = (me, "20000", "", "86400000", look, 1, "mine")
            return client.eval(BEAT, len(keys), *keys, *args)

        assert beat("0") == [[], []]  # nobody lapsed: the minute counted for no one
        assert float(client.zscore(keys[0], other) or 0) > now + 50_000
        assert beat("0") == [[], []]  # not robbed (as far as this reply knows): no look-up
        assert beat("1") == [[b"mine"], []]  # after a lost reply: looked up, found taken
