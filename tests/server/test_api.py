"""The runs API's endpoints are plain methods over one state object: each is tested alone here,
without HTTP (the router's own tests drive them through a real uvicorn)."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi import HTTPException

from otelstream import MemoryHub, Settings
from otelstream._server.api import RunsAPI
from otelstream._server.models import resume_after
from otelstream.events import Event
from otelstream.runs import PipelineRunner

RUN = "0af7651916cd43dd8448eb211c80319c"


def make_api(**settings: object) -> tuple[RunsAPI, MemoryHub]:
    hub = MemoryHub(Settings(**settings))  # type: ignore[arg-type]
    return RunsAPI(hub, PipelineRunner({}, settings=hub.settings), hub.settings), hub


def finished_run(hub: MemoryHub) -> None:
    hub.publish(RUN, Event("pipeline_started", "p", RUN, 1, None, time.time_ns()))
    hub.publish(RUN, Event("pipeline_completed", "p", RUN, 1, None, time.time_ns()))


def test_an_unknown_run_is_a_404_that_echoes_its_id_cut() -> None:
    api, _ = make_api()
    with pytest.raises(HTTPException) as error:
        asyncio.run(api.run_events("x" * 10_000))
    assert error.value.status_code == 404
    assert "x" * 64 + "…" in error.value.detail and "x" * 65 not in error.value.detail


def test_a_finished_run_with_nothing_more_to_send_is_a_204() -> None:
    api, hub = make_api()
    finished_run(hub)
    assert asyncio.run(api.run_events(RUN, after=2)).status_code == 204


def test_last_event_id_is_one_dependency_and_the_header_wins() -> None:
    assert asyncio.run(resume_after()) == 0
    assert asyncio.run(resume_after(last_event_id=2)) == 2
    assert asyncio.run(resume_after(last_event_id=2, last_event_id_header="7")) == 7


def test_a_full_server_still_ends_a_finished_runs_last_reconnect() -> None:
    api, hub = make_api(max_streams=1)
    finished_run(hub)
    api.streams.streams.add(object())  # type: ignore[arg-type]
    asyncio.run(api.run_stream_room(RUN, after=2))  # no 503: the endpoint answers 204
    with pytest.raises(HTTPException) as error:
        asyncio.run(api.run_stream_room(RUN, after=1))
    assert error.value.status_code == 503


def test_the_stream_bound_is_a_dependency_that_answers_503() -> None:
    api, _ = make_api(max_streams=1)
    asyncio.run(api.stream_room())  # room
    api.streams.streams.add(object())  # type: ignore[arg-type]
    with pytest.raises(HTTPException) as error:
        asyncio.run(api.stream_room())
    assert error.value.status_code == 503 and error.value.headers == {"Retry-After": "5"}


def test_authorize_needs_the_run_token_only_when_asked_to() -> None:
    api, _ = make_api()
    asyncio.run(api.authorize(RUN))  # no token needed
    api, _ = make_api(require_run_token=True)
    with pytest.raises(HTTPException) as error:
        asyncio.run(api.authorize(RUN, token="forged"))
    assert error.value.status_code == 404
    asyncio.run(api.authorize(RUN, token=api.tokens.issue(RUN)))


def test_cancelling_a_finished_run_is_a_409() -> None:
    api, hub = make_api()
    finished_run(hub)
    with pytest.raises(HTTPException) as error:
        asyncio.run(api.cancel_run(RUN))
    assert error.value.status_code == 409 and "success" in error.value.detail
