"""otelstream.client against a real uvicorn, with a wrapper that cuts streams in the middle."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from otelstream.client import AsyncClient, Client, ClientError, MissedEvents, RunNotFound
from otelstream.testing import free_port, wait_for_run
from tests.client.conftest import GATED, ClientFactory, Served, serving
from tests.conftest import shape


def test_both_clients_have_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in vars(cls) if not name.startswith("_")}

    assert public(AsyncClient) == public(Client) - {"close"} | {"aclose"}
    for name in public(Client) - {"close"}:
        sync, async_ = getattr(Client, name), getattr(AsyncClient, name)
        assert inspect.signature(sync).parameters.keys() == (
            inspect.signature(async_).parameters.keys()
        ), name
        if inspect.isgeneratorfunction(sync):
            assert inspect.isasyncgenfunction(async_), name
        else:
            assert inspect.iscoroutinefunction(async_), name


def open_gate_when_reached(served: Served, streams: int = 2) -> threading.Thread:
    """Opens the gate once the run waits there and `streams` event streams were opened,
    so the resumed stream is live, not a replay of a finished run."""

    def open_gate() -> None:
        assert served.reached.wait(10)
        deadline = time.monotonic() + 10
        while len(served.watch.requests) < streams and time.monotonic() < deadline:
            time.sleep(0.01)
        served.gate.set()

    thread = threading.Thread(target=open_gate)
    thread.start()
    return thread


def test_start_and_read_a_whole_run(served: Served, client_class: ClientFactory) -> None:
    served.gate.set()
    with client_class(served.url) as client:
        assert [p["name"] for p in client.pipelines()] == ["gated", "failing", "typed"]
        events = list(client.run("gated"))
    assert shape(events) == GATED
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("replay_all", [False, True], ids=["resume", "server-repeats"])
def test_a_cut_stream_resumes_with_exactly_the_missing_events(
    served: Served, client_class: ClientFactory, replay_all: bool
) -> None:
    """The stream ends after three events while the run waits at its gate; the client
    reconnects with Last-Event-ID: 3 and gets 4, 5, 6 (and drops repeats if the server sends
    them again)."""
    served.watch.cut_after, served.watch.replay_all = 3, replay_all
    opener = open_gate_when_reached(served)
    with client_class(served.url) as client:
        run = client.start("gated")
        events = list(client.events(run.run_id))
    opener.join()
    assert shape(events) == GATED
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert served.requests(run.run_id) == [(None, 200), ("3", 200)]


def test_reading_from_a_position_gives_only_what_follows(
    served: Served, client_class: ClientFactory
) -> None:
    served.gate.set()
    with client_class(served.url) as client:
        run = client.start("gated")
        assert len(list(client.events(run.run_id))) == 6
        assert [e["seq"] for e in client.events(run.run_id, after=4)] == [5, 6]
        assert list(client.events(run.run_id, after=6)) == [], "204: nothing more"
    assert served.requests(run.run_id) == [(None, 200), ("4", 200), ("6", 204)]


def test_events_the_server_no_longer_has_are_an_error(client_class: ClientFactory) -> None:
    with serving(replay_events=3) as served:
        served.gate.set()
        with client_class(served.url) as client:
            run = client.start("gated")
            wait_for_run(client, run.run_id)
            with pytest.raises(MissedEvents, match="expected event 1, the server sent 4"):
                list(client.events(run.run_id))


def test_unknown_runs_and_pipelines(served: Served, client_class: ClientFactory) -> None:
    with client_class(served.url) as client:
        with pytest.raises(RunNotFound):
            list(client.events("f" * 32))
        with pytest.raises(RunNotFound):
            client.get_run("f" * 32)
        with pytest.raises(Exception, match="404 unknown pipeline 'nope'"):
            client.start("nope")


def test_a_server_never_reached_is_an_error_at_once(client_class: ClientFactory) -> None:
    with client_class(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(ClientError, match=r"cannot reach the server at http://127\.0\.0\.1:"):
            list(client.events("f" * 32))


def test_a_server_that_goes_away_is_an_error_after_the_retries(
    client_class: ClientFactory,
) -> None:
    """The stream is cut after one event and the server is gone when the client comes back."""
    with serving() as served:
        served.watch.cut_after = 1
        with client_class(served.url, max_retries=2, backoff=0.01) as client:
            run = client.start("gated")
            events = client.events(run.run_id)
            assert next(events)["seq"] == 1
            served.watch.app = _gone
            with pytest.raises(ClientError, match="gave up after 2 retries"):
                next(events)
        served.gate.set()


async def _gone(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers 503 to everything, as a server that is going away or overloaded does."""
    await send({"type": "http.response.start", "status": 503, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_the_async_client_resumes_the_same_way() -> None:
    with serving(prefix="/otel") as served:
        served.watch.cut_after = 2
        opener = open_gate_when_reached(served)

        async def read(url: str) -> tuple[str, list[dict[str, Any]]]:
            async with AsyncClient(url) as client:
                events = [event async for event in client.run("gated")]
                run_id = events[0]["run_id"]
                assert (await client.get_run(run_id))["status"] == "success"
                return run_id, events

        run_id, events = asyncio.run(read(served.url))
        opener.join()
        assert shape(events) == GATED
        assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
        assert served.requests(run_id) == [(None, 200), ("2", 200)]
