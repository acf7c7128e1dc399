"""Who may start and watch runs: per-run tokens, the app's own dependencies, limits, CORS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException

from otelstream import Settings
from otelstream._server.access import RunTokens
from otelstream.fastapi import create_router
from otelstream.testing import UvicornServer, iter_sse, read_events
from tests.conftest import Gate, make_telemetry, shape
from tests.routers import TWO_STEPS, App, pipelines_for, serve_app


def test_tokens_are_per_run_and_per_secret() -> None:
    tokens = RunTokens("s3cret")
    token = tokens.issue("a" * 32)
    assert tokens.check("a" * 32, token)
    assert not tokens.check("b" * 32, token)
    assert not tokens.check("a" * 32, None)
    assert not RunTokens("other").check("a" * 32, token)
    assert RunTokens("s3cret").issue("a" * 32) == token


@pytest.fixture
def locked() -> Iterator[App]:
    yield from serve_app(require_run_token=True, run_token_secret="s3cret")


def test_a_run_token_is_needed_to_read_or_cancel_a_run(locked: App) -> None:
    body = locked.client.post("/runs", json={"pipeline_name": "two_steps"}).json()
    run_id, token = body["run_id"], body["token"]
    assert token == RunTokens("s3cret").issue(run_id)
    assert body["events_url"] == f"/runs/{run_id}/events?token={token}"
    assert body["run_url"] == f"/runs/{run_id}?token={token}"
    for method, path in [("GET", f"/runs/{run_id}/events"), ("GET", f"/runs/{run_id}"),
                         ("DELETE", f"/runs/{run_id}")]:  # fmt: skip
        for params in ({}, {"token": "forged"}, {"token": RunTokens("s3cret").issue("f" * 32)}):
            refused = locked.client.request(method, path, params=params)
            assert refused.status_code == 404, (method, path, params)
            assert "wrong token" in refused.json()["detail"]
    assert shape(read_events(locked.client, "GET", body["events_url"])) == TWO_STEPS
    by_header = read_events(
        locked.client, "GET", f"/runs/{run_id}/events", headers={"X-Otelstream-Token": token}
    )
    assert shape(by_header) == TWO_STEPS
    assert locked.client.get(body["run_url"]).json()["status"] == "success"


def test_without_the_setting_no_token_is_issued_or_needed() -> None:
    for app in serve_app():
        body = app.client.post("/runs", json={"pipeline_name": "two_steps"}).json()
        assert "token" not in body
        assert shape(read_events(app.client, "GET", body["events_url"])) == TWO_STEPS


def user(x_user: Annotated[str | None, Header()] = None) -> str:
    if x_user is None:
        raise HTTPException(401, "who are you?")
    return x_user


def may_watch(run_id: str, who: Annotated[str, Depends(user)]) -> None:
    if who != "alice":
        raise HTTPException(403, f"{who} may not watch {run_id}")


def test_the_apps_own_dependencies_guard_starting_and_watching() -> None:
    telemetry = make_telemetry()
    app = FastAPI()
    app.include_router(
        create_router(
            hub=telemetry.hub,
            pipelines=pipelines_for(telemetry.provider, Gate()),
            tracer_provider=telemetry.provider,
            start_dependencies=[Depends(user)],
            watch_dependencies=[Depends(may_watch)],
        )
    )
    with UvicornServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        body = {"pipeline_name": "two_steps"}
        assert client.get("/pipelines").status_code == 401
        assert client.post("/runs", json=body).status_code == 401
        assert client.post("/run-workflow", json=body).status_code == 401
        started = client.post("/runs", json=body, headers={"X-User": "bob"})
        assert started.status_code == 202
        run_id = started.json()["run_id"]
        bob = client.get(f"/runs/{run_id}/events", headers={"X-User": "bob"})
        assert (bob.status_code, bob.json()) == (403, {"detail": f"bob may not watch {run_id}"})
        assert client.get(f"/runs/{run_id}", headers={"X-User": "bob"}).status_code == 403
        events = read_events(client, "GET", f"/runs/{run_id}/events", headers={"X-User": "alice"})
        assert shape(events) == TWO_STEPS
    telemetry.provider.shutdown()


def test_streams_beyond_the_limit_are_refused_with_503() -> None:
    for app in serve_app(max_streams=1):
        run_id = app.run("gated")
        assert app.gate.reached.wait(10)
        first = iter_sse(app.client, "GET", f"/runs/{run_id}/events")
        next(first)
        with httpx.Client(base_url=app.url, timeout=10) as other:
            refused = other.get(f"/runs/{run_id}/events")
            assert (refused.status_code, refused.headers["retry-after"]) == (503, "5")
            refused = other.post("/run-workflow", json={"pipeline_name": "two_steps"})
            assert refused.status_code == 503
            first.close()  # the first stream goes away: room again
            deadline = time.monotonic() + 5
            while app.hub.subscriber_count():
                assert time.monotonic() < deadline
                time.sleep(0.01)
            app.gate.opened.set()
            events = read_events(other, "GET", f"/runs/{run_id}/events")
            assert events[-1]["type"] == "pipeline_completed"


def test_cors_is_off_unless_the_app_configures_it(app: Any) -> None:
    response = app.client.get("/pipelines", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = app.client.options(
        "/runs",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


@pytest.fixture
def app() -> Iterator[App]:
    yield from serve_app()


def test_settings_read_the_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTELSTREAM_REQUIRE_RUN_TOKEN", "true")
    monkeypatch.setenv("OTELSTREAM_RUN_TOKEN_SECRET", "from-env")
    settings = Settings()
    assert settings.require_run_token
    assert settings.run_token_secret is not None
    assert settings.run_token_secret.get_secret_value() == "from-env"
    assert "from-env" not in repr(settings)


def test_request_bodies_are_bounded() -> None:
    for app in serve_app(max_body_bytes=1024):
        padding = "x" * 2048
        body = {"pipeline_name": "two_steps", "parameters": {"rows": 1, "padding": padding}}
        announced = app.client.post("/runs", json=body)
        assert announced.status_code == 413
        assert announced.json() == {"detail": "the request body is over 1024 bytes"}

        def chunks() -> Iterator[bytes]:  # sent chunked, with no Content-Length
            yield b'{"pipeline_name": "two_steps", "parameters": {"padding": "'
            for _ in range(8):
                yield b"y" * 256
            yield b'"}}'

        chunked = app.client.post(
            "/run-workflow", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        assert not app.hub._runs, "no run was started"
        fits = app.client.post("/runs", json={"pipeline_name": "two_steps"})
        assert fits.status_code == 202
