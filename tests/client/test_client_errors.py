"""The client's errors as code handles them (a class a refusal, the status, a 422's fields, a
503's Retry-After, a refused connection), parameters by keyword, the runs page, cancelling and
run tokens: both clients, against a real uvicorn."""

from __future__ import annotations

import time

import httpx
import pytest

from otelstream.client import (
    Client,
    ClientConnectionError,
    ClientError,
    Conflict,
    FieldError,
    InvalidRequest,
    NotFound,
    Retrying,
    RunNotFound,
    RunsPage,
    Unavailable,
)
from otelstream.testing import free_port, wait_for_run
from tests.client.conftest import ClientFactory, Served, serving
from tests.conftest import shape


def test_a_422_names_each_field_and_is_an_invalid_request(
    served: Served, client_class: ClientFactory
) -> None:
    with client_class(served.url) as client:
        with pytest.raises(InvalidRequest) as refused:
            client.start("typed", seconds="soon", bogus=1)
    error = refused.value
    assert isinstance(error, ClientError) and error.status_code == 422
    assert error.errors == (
        FieldError("parameters.seconds", "Input should be a valid number, unable to parse "
                   "string as a number", "float_parsing"),
        FieldError("parameters.bogus", "Extra inputs are not permitted", "extra_forbidden"),
    )  # fmt: skip
    assert str(error).splitlines() == [
        "the run did not start: 422 invalid request:",
        "  parameters.seconds: Input should be a valid number, unable to parse string as a number",
        "  parameters.bogus: Extra inputs are not permitted",
    ]
    assert served.called == []


def test_a_404_is_not_found_with_its_status(served: Served, client_class: ClientFactory) -> None:
    with client_class(served.url) as client:
        with pytest.raises(NotFound) as pipeline:
            client.start("nope")
        with pytest.raises(RunNotFound) as run:
            client.get_run("f" * 32)
        with pytest.raises(RunNotFound) as stream:
            list(client.events("f" * 32))
    assert not isinstance(pipeline.value, RunNotFound)
    assert (pipeline.value.status_code, pipeline.value.detail) == (404, "unknown pipeline 'nope'")
    for error in (run.value, stream.value):
        assert error.status_code == 404 and isinstance(error, NotFound)
        assert str(error).startswith(f"unknown or expired run '{'f' * 32}'")


def test_a_refused_connection_is_the_clients_own_error(client_class: ClientFactory) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    calls = {
        "pipelines": lambda client: client.pipelines(),
        "start": lambda client: client.start("typed", seconds=0),
        "get_run": lambda client: client.get_run("f" * 32),
        "runs": lambda client: client.runs(),
        "cancel": lambda client: client.cancel("f" * 32),
        "events": lambda client: list(client.events("f" * 32)),
        "run": lambda client: list(client.run("typed")),
    }
    with client_class(url) as client:
        for name, call in calls.items():
            with pytest.raises(ClientConnectionError) as refused:
                call(client)
            error = refused.value
            assert not isinstance(error, httpx.HTTPError), name
            assert error.url == url and error.status_code is None, name
            assert str(error).startswith(f"cannot reach the server at {url}: "), name
            assert isinstance(error.__cause__, httpx.ConnectError), name


def test_parameters_by_keyword_by_mapping_or_both(
    served: Served, client_class: ClientFactory
) -> None:
    with client_class(served.url) as client:
        events = list(client.run("typed", seconds=0.01))
        assert shape(events)[-1] == ("pipeline_completed", "typed")
        list(client.run("typed", {"seconds": 0.02}))
        list(client.run("typed", {"seconds": 0.03}, label="both"))
        client.start("typed", parameters={"label": "by name"})  # as before: a keyword mapping
        with pytest.raises(TypeError, match="'seconds' given both"):
            client.start("typed", {"seconds": 1}, seconds=2)
        for run in client.runs(pipeline="typed"):
            wait_for_run(client, run["run_id"])
    assert served.called == [
        {"seconds": 0.01, "label": ""},
        {"seconds": 0.02, "label": ""},
        {"seconds": 0.03, "label": "both"},
        {"seconds": 0.0, "label": "by name"},
    ]


def test_runs_is_a_list_with_the_next_cursor(served: Served, client_class: ClientFactory) -> None:
    with client_class(served.url) as client:
        first = client.start("typed").run_id
        wait_for_run(client, first)
        second = client.start("typed").run_id
        wait_for_run(client, second)
        page = client.runs(pipeline="typed", limit=1)
        assert isinstance(page, RunsPage) and isinstance(page, list)
        assert [run["run_id"] for run in page] == [second] and len(page) == 1
        assert page.next_cursor is not None
        older = client.runs(pipeline="typed", limit=1, cursor=page.next_cursor)
        assert [run["run_id"] for run in older.runs] == [first]
        assert older.next_cursor is None or client.runs(cursor=older.next_cursor) == []
        assert page["runs"] == page.runs and page["next_cursor"] == page.next_cursor  # the old
        assert page[0]["status"] == "success" and page[0]["name"] == "typed"
        with pytest.raises(InvalidRequest) as refused:
            client.runs(status="done")
        assert refused.value.errors[0].field.endswith("status")


def test_a_503_is_asked_again_as_retry_after_says_then_unavailable(
    served: Served, client_class: ClientFactory
) -> None:
    told: list[Retrying] = []
    served.refusing.count = 2
    with client_class(served.url, on_retry=told.append, max_retries=3) as client:
        run = client.start("typed", seconds=0)
        wait_for_run(client, run.run_id)
        assert served.refusing.refused == 2
        assert [(r.what, r.attempt, r.max_retries, r.delay) for r in told] == [
            ("POST /runs", 1, 3, 0.01),
            ("POST /runs", 2, 3, 0.01),
        ]
        assert str(told[0]) == (
            "POST /runs: the server answered 503: the hub cannot be reached; "
            "retrying in 0.0 s (1 of 3)"
        )
        served.refusing.count = 100
        with pytest.raises(Unavailable) as refused:
            client.start("typed")
    assert served.refusing.refused == 2 + 4  # the first ask and 3 more
    error = refused.value
    assert (error.status_code, error.retry_after, error.detail) == (
        503, 0.01, "the hub cannot be reached",
    )  # fmt: skip
    assert isinstance(error, ClientError)


def test_a_stream_refused_past_its_retries_is_unavailable(
    served: Served, client_class: ClientFactory
) -> None:
    told: list[Retrying] = []
    served.gate.set()
    with client_class(served.url, max_retries=2, backoff=0.01, on_retry=told.append) as client:
        run = client.start("gated")
        wait_for_run(client, run.run_id)
        served.refusing.path, served.refusing.count = "/events", 100
        with pytest.raises(Unavailable, match="gave up after 2 retries") as refused:
            list(client.events(run.run_id))
    assert refused.value.status_code == 503 and refused.value.retry_after == 0.01
    assert [r.what for r in told] == [f"the stream of run {run.run_id}"] * 2
    assert told[0].reason == "the server answered 503: the hub cannot be reached"


def test_a_page_that_is_not_an_event_stream_is_an_error(
    served: Served, client_class: ClientFactory
) -> None:
    """A 200 that is not `text/event-stream` (a proxy's login page) is not read as events."""
    served.gate.set()
    with client_class(served.url) as client:
        run = client.start("gated")
        served.refusing.path, served.refusing.count = "/events", 1
        served.refusing.status, served.refusing.content_type = 200, b"text/html"
        served.refusing.body = b"<html>sign in</html>"
        with pytest.raises(ClientError, match=r"200 is not an event stream \(text/html\)"):
            list(client.events(run.run_id))


def test_cancel_a_run_then_a_conflict_once_it_has_ended(
    served: Served, client_class: ClientFactory
) -> None:
    with client_class(served.url) as client:
        run = client.start("gated")
        assert served.reached.wait(10)
        assert client.cancel(run.run_id) == {"run_id": run.run_id, "status": "cancelling"}
        served.gate.set()
        assert wait_for_run(client, run.run_id)["status"] == "cancelled"
        deadline = time.monotonic() + 10
        with pytest.raises(Conflict) as ended:  # once its worker thread has let go of it too
            while time.monotonic() < deadline:
                client.cancel(run.run_id)
                time.sleep(0.01)
    assert ended.value.status_code == 409
    assert "has already ended (cancelled)" in str(ended.value)


def test_a_run_token_is_sent_for_the_runs_this_client_started(client_class: ClientFactory) -> None:
    with serving(require_run_token=True) as served:
        served.gate.set()
        with client_class(served.url) as client:
            run = client.start("gated")
            assert run.token and run.events_url.endswith(f"?token={run.token}")
            assert shape(client.events(run.run_id))[-1] == ("pipeline_completed", "gated")
            assert client.get_run(run.run_id)["status"] == "success"
        with client_class(served.url) as stranger:
            with pytest.raises(RunNotFound, match="or a wrong token"):
                stranger.get_run(run.run_id)
            assert stranger.get_run(run.run_id, token=run.token)["status"] == "success"
            assert len(list(stranger.events(run.run_id, token=run.token))) == 6


def test_a_callers_http_client_is_used_and_left_open(served: Served) -> None:
    seen: list[str] = []

    def hook(request: httpx.Request) -> None:
        seen.append(request.headers.get("x-team", ""))

    served.gate.set()
    with httpx.Client(
        base_url=served.url, headers={"X-Team": "a"}, event_hooks={"request": [hook]}
    ) as http:
        with Client(served.url, http=http) as client:
            assert len(list(client.run("gated"))) == 6
        assert not http.is_closed
    assert seen and set(seen) == {"a"}
    with Client(served.url, headers={"X-Team": "b"}) as client:
        assert client.http.headers["x-team"] == "b"


def test_every_refusal_is_catchable_as_client_error() -> None:
    for kind in (ClientConnectionError, Conflict, InvalidRequest, NotFound, RunNotFound,
                 Unavailable):  # fmt: skip
        assert issubclass(kind, ClientError)
