"""The HTTP API end to end: a real uvicorn on 127.0.0.1, read with a real HTTP client."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from otelstream import MemoryHub, streamed_run
from otelstream.fastapi import create_router
from otelstream.testing import UvicornServer, iter_sse, read_events
from tests.conftest import shape
from tests.routers import TIMEOUT, TWO_STEPS, App, serve_app


@pytest.fixture
def app() -> Iterator[App]:
    yield from serve_app()


def test_run_workflow_streams_the_whole_run(app: App) -> None:
    with app.client.stream(
        "POST", "/run-workflow", json={"pipeline_name": "two_steps"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert "content-length" not in response.headers
        raw = response.read()
    messages = raw.decode().split("\n\n")
    assert messages[-1] == ""
    # the first message also tells the browser how soon to reconnect (OTELSTREAM_RETRY_MS)
    assert messages[0].endswith("\nretry: 1000")
    messages[0] = messages[0].removesuffix("\nretry: 1000")
    events = [json.loads(m.split("\ndata: ")[1]) for m in messages[:-1]]
    assert [m.split("\n")[0] for m in messages[:-1]] == [f"id: {n}" for n in range(1, 7)]
    assert shape(events) == TWO_STEPS
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[-1]["status"] == "success"
    assert len({e["run_id"] for e in events}) == 1


def test_post_runs_answers_202_and_the_stream_has_the_run(app: App) -> None:
    response = app.client.post("/runs", json={"pipeline_name": "two_steps"})
    assert response.status_code == 202
    body = response.json()
    run_id = body["run_id"]
    assert body == {
        "run_id": run_id,
        "events_url": f"/runs/{run_id}/events",
        "run_url": f"/runs/{run_id}",
    }
    events = read_events(app.client, "GET", body["events_url"])
    assert shape(events) == TWO_STEPS
    assert {e["run_id"] for e in events} == {run_id}


def test_a_late_subscriber_gets_the_whole_run(app: App) -> None:
    run_id = app.run("two_steps")
    app.wait_until_finished(run_id)
    events = read_events(app.client, "GET", f"/runs/{run_id}/events")
    assert shape(events) == TWO_STEPS
    assert [e["seq"] for e in events] == list(range(1, 7))


def test_last_event_id_resumes_after_it(app: App) -> None:
    run_id = app.run("two_steps")
    app.wait_until_finished(run_id)
    url = f"/runs/{run_id}/events"
    by_header = read_events(app.client, "GET", url, headers={"Last-Event-ID": "3"})
    assert [e["seq"] for e in by_header] == [4, 5, 6]
    by_query = read_events(app.client, "GET", url, params={"last_event_id": 5})
    assert [e["seq"] for e in by_query] == [6]
    both = read_events(
        app.client, "GET", url, params={"last_event_id": 1}, headers={"Last-Event-ID": "4"}
    )
    assert [e["seq"] for e in both] == [5, 6], "the header wins, as a browser sends it"


def test_a_finished_run_with_nothing_more_to_send_answers_204(app: App) -> None:
    run_id = app.run("two_steps")
    app.wait_until_finished(run_id)
    response = app.client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "6"})
    assert response.status_code == 204
    assert response.content == b""


def test_resuming_in_the_middle_of_a_run(app: App) -> None:
    run_id = app.run("gated")
    assert app.gate.reached.wait(10)
    url = f"/runs/{run_id}/events"
    first = []
    for message in iter_sse(app.client, "GET", url):
        first.append(json.loads(message.data))
        if len(first) == 3:
            break  # the connection drops here
    assert shape(first) == [
        ("pipeline_started", "gated"),
        ("task_started", "before"),
        ("task_completed", "before"),
    ]
    opener = threading.Timer(0.1, app.gate.opened.set)
    opener.start()
    rest = read_events(app.client, "GET", url, headers={"Last-Event-ID": "3"})
    opener.join()
    assert shape(rest) == [
        ("task_started", "after"),
        ("task_completed", "after"),
        ("pipeline_completed", "gated"),
    ]
    assert [e["seq"] for e in rest] == [4, 5, 6]


def test_concurrent_runs_never_see_each_others_events(app: App) -> None:
    results: list[list[dict[str, Any]]] = []

    def one_run() -> None:
        with httpx.Client(base_url=app.url, timeout=TIMEOUT) as client:
            results.append(
                read_events(client, "POST", "/run-workflow", json={"pipeline_name": "two_steps"})
            )

    threads = [threading.Thread(target=one_run) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(results) == 10
    assert len({events[0]["run_id"] for events in results}) == 10
    for events in results:
        assert shape(events) == TWO_STEPS
        assert [e["seq"] for e in events] == list(range(1, 7))
        assert len({e["run_id"] for e in events}) == 1


def test_a_client_that_disconnects_leaves_nothing_behind(app: App) -> None:
    run_id = app.run("gated")
    assert app.gate.reached.wait(10)
    for _message in iter_sse(app.client, "GET", f"/runs/{run_id}/events"):
        assert app.hub.subscriber_count(run_id) == 1
        break  # closes the connection
    deadline = time.monotonic() + 5
    while app.hub.subscriber_count() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert app.hub.subscriber_count() == 0
    app.gate.opened.set()
    assert app.wait_until_finished(run_id)["status"] == "success"


def test_an_idle_stream_sends_keepalive_comments() -> None:
    for app in serve_app(keepalive_seconds=0.05):
        run_id = app.run("gated")
        assert app.gate.reached.wait(10)
        received = b""
        with app.client.stream("GET", f"/runs/{run_id}/events") as response:
            for chunk in response.iter_raw():
                received += chunk
                if received.count(b": keep-alive\n\n") >= 2:
                    break
        assert received.count(b"data: ") == 3, "comments only, no new events while idle"


def _burst_while_the_loop_is_blocked(app: App, spans: int) -> tuple[str, list[Any]]:
    """A live stream, then `spans` spans while the server's event loop cannot send."""
    tracer = app.telemetry.tracer
    with streamed_run("burst", tracer_provider=app.telemetry.provider) as run:
        messages = iter_sse(app.client, "GET", f"/runs/{run.run_id}/events")
        assert json.loads(next(messages).data)["type"] == "pipeline_started"
        blocker = threading.Thread(
            target=httpx.post,
            args=(f"{app.url}/test/block-loop",),
            kwargs={"params": {"seconds": 0.3}},
        )
        blocker.start()
        assert app.blocking.wait(5)
        for n in range(spans):
            with tracer.start_as_current_span(f"task:t{n}"):
                pass
    rest = list(messages)
    blocker.join()
    return run.run_id, rest


def test_a_healthy_subscriber_behind_a_busy_loop_is_not_cut() -> None:
    """The old lag bound (3 here) cut readers the loop had not served yet; it cuts no one now."""
    for app in serve_app(subscriber_max_lag=3):
        _, rest = _burst_while_the_loop_is_blocked(app, spans=50)
        assert [json.loads(m.data)["seq"] for m in rest] == list(range(2, 103))


def test_a_subscriber_whose_position_was_evicted_gets_a_final_overflow_notice() -> None:
    for app in serve_app(replay_events=4):
        run_id, rest = _burst_while_the_loop_is_blocked(app, spans=5)
        assert len(rest) == 1
        # sent without an id: the last event id stays that of the last real event
        assert rest[0].id == "1"
        notice = json.loads(rest[0].data)
        assert {k: notice[k] for k in ("type", "run_id", "last_seq", "reason")} == {
            "type": "stream_overflow",
            "run_id": run_id,
            "last_seq": 1,
            "reason": "evicted",
        }
        assert "Last-Event-ID" in notice["message"]
        resumed = read_events(
            app.client, "GET", f"/runs/{run_id}/events", headers={"Last-Event-ID": "1"}
        )
        assert [e["seq"] for e in resumed] == [9, 10, 11, 12]  # what the buffer still has


def test_a_client_that_stops_reading_is_cut_after_the_send_timeout() -> None:
    """Large events fill the socket's buffers; the stream is cut and lets its run go."""
    for app in serve_app(
        send_timeout_seconds=1, attribute_allowlist="blob", max_string_length=100_000
    ):
        tracer = app.telemetry.tracer
        with streamed_run("flood", tracer_provider=app.telemetry.provider) as run:
            host, port = app.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port))) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(f"GET /runs/{run.run_id}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                deadline = time.monotonic() + 10
                while app.telemetry.hub.subscriber_count(run.run_id) == 0:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                blob = {"blob": "x" * 100_000}
                for n in range(100):  # ~20 MB the client never reads
                    with tracer.start_as_current_span(f"task:t{n}", attributes=blob):
                        pass
                deadline = time.monotonic() + 30
                while app.telemetry.hub.subscriber_count(run.run_id):  # cut: it lets go
                    assert time.monotonic() < deadline, "a stalled client was never cut"
                    time.sleep(0.05)
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        # the run went on without it, and a reader that resumes gets every event
        events = read_events(app.client, "GET", f"/runs/{run.run_id}/events")
        assert [e["seq"] for e in events] == list(range(1, 203))


def test_errors_are_json_before_any_stream(app: App) -> None:
    for path in ("/run-workflow", "/runs"):
        unknown = app.client.post(path, json={"pipeline_name": "nope"})
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/json"
        assert unknown.json() == {"detail": "unknown pipeline 'nope'"}
        for body in (
            b"{",
            b'{"parameters": {}}',
            b'{"pipeline_name": "two_steps", "parameters": 3}',
        ):
            malformed = app.client.post(
                path, content=body, headers={"content-type": "application/json"}
            )
            assert malformed.status_code == 422, body
            assert malformed.headers["content-type"] == "application/json"
    for run_id in ("f" * 32, "not-a-run", "F" * 32):
        assert app.client.get(f"/runs/{run_id}").status_code == 404
        assert app.client.get(f"/runs/{run_id}/events").status_code == 404
    run_id = app.run("two_steps")
    bad_id = app.client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "x"})
    assert bad_id.status_code == 422


def test_get_run_shows_status_times_and_the_span_tree() -> None:
    for app in serve_app(trace_url="http://jaeger:16686/trace/{trace_id}"):
        run_id = app.run("failing")
        run = app.wait_until_finished(run_id)
        assert run["status"] == "error"
        assert (run["error"], run["error_type"]) == ("disk full", "RuntimeError")
        assert run["name"] == "failing" and run["last_seq"] == 6
        assert run["trace_url"] == f"http://jaeger:16686/trace/{run_id}"
        assert run["events_url"] == f"/runs/{run_id}/events"
        assert run["duration_ms"] >= 0 and run["started_at"] <= run["ended_at"]
        children = run["tree"]["children"]
        assert [(c["name"], c["status"], c["error"]) for c in children] == [
            ("ok", "success", None),
            ("broken", "error", "disk full"),
        ]


NO_HISTORY = dict.fromkeys(
    ("expected_duration_ms", "expected_p90_ms", "success_rate", "last_status")
)
"""What `GET /pipelines` tells of a pipeline that has not run yet."""


def test_pipelines_are_listed(app: App) -> None:
    response = app.client.get("/pipelines")
    assert response.status_code == 200
    assert response.json() == {
        "pipelines": [
            {"name": "two_steps", "description": "extract, then load.", **NO_HISTORY},
            {"name": "gated", "description": None, **NO_HISTORY},
            {"name": "failing", "description": None, **NO_HISTORY},
        ]
    }


def test_a_full_pool_refuses_new_runs_with_503() -> None:
    for app in serve_app(max_workers=1, max_queued_runs=0):
        app.run("gated")
        assert app.gate.reached.wait(10)
        refused = app.client.post("/runs", json={"pipeline_name": "two_steps"})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        app.gate.opened.set()
        deadline = time.monotonic() + 5
        while (
            again := app.client.post("/runs", json={"pipeline_name": "two_steps"})
        ).status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert again.status_code == 202


def test_a_provider_without_the_processor_is_a_clear_error() -> None:
    app = FastAPI()
    hub = MemoryHub()
    provider = TracerProvider()  # EventStreamProcessor(hub) was forgotten
    app.include_router(
        create_router(hub=hub, pipelines={"p": lambda: None}, tracer_provider=provider)
    )
    with UvicornServer(app) as server:
        response = httpx.post(
            f"{server.url}/run-workflow", json={"pipeline_name": "p"}, timeout=TIMEOUT
        )
    assert response.status_code == 500
    assert "EventStreamProcessor" in response.json()["detail"]


@pytest.mark.parametrize(
    ("content", "media_type", "message"),
    [
        ('{"pipeline_name": "two_steps"}', None, "send the body as JSON, with Content-Type: "),
        (
            '{"pipeline_name": "two_steps"}',
            "text/plain",
            "send the body as JSON, with Content-Type: ",
        ),
        (
            '[{"pipeline_name": "two_steps"}]',
            "application/json",
            "the body must be a JSON object: ",
        ),
    ],
    ids=["no-content-type", "text-plain", "not-an-object"],
)
def test_a_body_that_is_not_a_json_object_is_told_how_to_send_it(
    app: App, content: str, media_type: str | None, message: str
) -> None:
    """Not with `loc: ["body", "__unknown_pipeline__"]`, a name that is only ours."""
    headers = {"content-type": media_type} if media_type else {}
    response = app.client.post("/runs", content=content, headers=headers)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body"]
    assert error["msg"].startswith(message), error
    assert "__unknown_pipeline__" not in response.text
    missing = app.client.post("/runs", json={"parameters": {}})
    assert [e["loc"] for e in missing.json()["detail"]] == [["body", "pipeline_name"]]


def test_a_404_does_not_echo_a_long_name_in_full(app: App) -> None:
    long = "a" * 10_000
    for method, path in [("GET", f"/runs/{long}"), ("GET", f"/runs/{long}/events")]:
        response = app.client.request(method, path)
        assert response.status_code == 404
        assert response.json()["detail"].startswith(f"unknown or expired run '{'a' * 64}…': ")
    response = app.client.post("/runs", json={"pipeline_name": long})
    assert response.status_code == 404
    assert response.json() == {"detail": f"unknown pipeline '{'a' * 64}…'"}


def test_a_parameter_json_cannot_carry_is_a_422_not_a_500(app: App) -> None:
    """Python's JSON reads NaN; the 422 that quotes it must still be JSON."""
    body = '{"pipeline_name": "two_steps", "parameters": {"rows": NaN}}'
    response = app.client.post("/runs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["input"]) == (["body", "two_steps", "parameters", "rows"], "nan")


def test_parameters_are_checked_against_the_pipeline_signature(app: App) -> None:
    for parameters, loc, kind in [
        ({"rows": "many"}, ["body", "two_steps", "parameters", "rows"], "int_parsing"),
        (
            {"rows": 1, "colour": "red"},
            ["body", "two_steps", "parameters", "colour"],
            "extra_forbidden",
        ),
    ]:
        response = app.client.post(
            "/run-workflow", json={"pipeline_name": "two_steps", "parameters": parameters}
        )
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert (error["loc"], error["type"]) == (loc, kind)
    assert not app.hub._runs, "no run was started"
    accepted = app.client.post(
        "/runs", json={"pipeline_name": "two_steps", "parameters": {"rows": "5"}}
    )
    assert accepted.status_code == 202
    assert app.wait_until_finished(accepted.json()["run_id"])["status"] == "success"


def test_a_cancelled_run_stops_at_its_next_span(app: App) -> None:
    run_id = app.run("gated")
    assert app.gate.reached.wait(10)
    response = app.client.delete(f"/runs/{run_id}")
    assert response.status_code == 202
    assert response.json() == {"run_id": run_id, "status": "cancelling"}
    app.gate.opened.set()
    events = read_events(app.client, "GET", f"/runs/{run_id}/events")
    assert shape(events) == [
        ("pipeline_started", "gated"),
        ("task_started", "before"),
        ("task_completed", "before"),
        ("pipeline_completed", "gated"),  # "after" never started
    ]
    assert (events[-1]["status"], events[-1]["error_type"]) == ("cancelled", "RunCancelled")
    assert app.client.get(f"/runs/{run_id}").json()["status"] == "cancelled"
    again = app.client.delete(f"/runs/{run_id}")
    assert again.status_code == 409
    assert again.json() == {"detail": f"run {run_id} has already ended (cancelled)"}
    assert app.client.delete(f"/runs/{'e' * 32}").status_code == 404


def test_a_run_cancelled_before_it_gets_a_worker_never_begins() -> None:
    for app in serve_app(max_workers=1, max_queued_runs=1):
        first = app.run("gated")
        assert app.gate.reached.wait(10)
        queued = app.run("two_steps")
        assert app.client.delete(f"/runs/{queued}").status_code == 202
        events = read_events(app.client, "GET", f"/runs/{queued}/events")
        assert shape(events) == [
            ("pipeline_started", "two_steps"),
            ("pipeline_completed", "two_steps"),
        ]
        assert events[-1]["status"] == "cancelled"
        app.gate.opened.set()
        assert app.wait_until_finished(first)["status"] == "success"
