"""SIGTERM to uvicorn: runs get their grace period, then every open stream ends with a message."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time

import httpx
import pytest
from fastapi import FastAPI

from otelstream import MemoryHub
from otelstream.fastapi import create_router
from otelstream.testing import free_port, iter_sse
from tests.conftest import ROOT, app_subprocess

APP = "tests.apps.shutdown_app:app"


def stream_then_signal(grace: str, count: int) -> tuple[list[dict[str, object]], int, str]:
    env = {"OTELSTREAM_SHUTDOWN_GRACE_SECONDS": grace}
    with app_subprocess(APP, **env) as (url, process):
        with httpx.Client(base_url=url, timeout=20) as client:
            body = {"pipeline_name": "steps", "parameters": {"count": count, "seconds": 0.05}}
            messages = iter_sse(client, "POST", "/run-workflow", json=body)
            events = [json.loads(next(messages).data)]
            process.send_signal(signal.SIGTERM)
            events += [json.loads(message.data) for message in messages]
        code = process.wait(timeout=20)
        output = process.communicate()[0]
    return events, code, output


def test_a_run_that_ends_within_the_grace_period_streams_to_its_end() -> None:
    events, code, _ = stream_then_signal(grace="30", count=6)
    assert [e["type"] for e in events][-1] == "pipeline_completed"
    assert events[-1]["status"] == "success"
    assert [e["seq"] for e in events] == list(range(1, 15))
    assert code == -signal.SIGTERM  # uvicorn re-raises the signal once it has shut down


def test_past_the_grace_period_streams_end_with_a_message_and_runs_are_cancelled() -> None:
    events, code, output = stream_then_signal(grace="0.2", count=2_000)  # 100 s of work
    last = events[-1]
    assert last["type"] == "server_shutdown"
    assert last["message"] == "the server is shutting down; reconnect with Last-Event-ID to resume"
    assert "seq" not in last
    assert all(
        e["type"] in ("pipeline_started", "task_started", "task_completed") for e in events[:-1]
    )
    assert code == -signal.SIGTERM  # uvicorn re-raises the signal once it has shut down
    assert "Exception in ASGI application" not in output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_task_blocked_where_no_cancel_reaches_does_not_hold_the_process(sig: int) -> None:
    """Its thread sleeps 60 s: past the grace period the stream is told and the process exits.

    (uvicorn re-raises the signal it shut down for: SIGTERM's default kills the process at
    once, SIGINT's ends it normally, which joins every thread that is not a daemon.)
    """
    env = {"OTELSTREAM_SHUTDOWN_GRACE_SECONDS": "0.5"}
    with app_subprocess(APP, **env) as (url, process):
        with httpx.Client(base_url=url, timeout=20) as client:
            body = {"pipeline_name": "blocked", "parameters": {"seconds": 60}}
            messages = iter_sse(client, "POST", "/run-workflow", json=body)
            events = [json.loads(next(messages).data), json.loads(next(messages).data)]
            signalled = time.monotonic()
            process.send_signal(sig)
            events += [json.loads(message.data) for message in messages]
        code = _exit_code(process, timeout=10)
        took = time.monotonic() - signalled
    assert [e["type"] for e in events] == ["pipeline_started", "task_started", "server_shutdown"]
    assert code == (-sig if sig == signal.SIGTERM else 0)
    assert took < 8, f"the process took {took:.1f} s to exit"


def test_a_doubled_ctrl_c_under_scripts_serve_takes_the_graceful_path() -> None:
    """A terminal's Ctrl-C reaches the whole process group, and uv forwards it to uvicorn too:
    uvicorn sees SIGINT twice, which it reads as "force quit". The grace period, the streams'
    `server_shutdown` and the app's shutdown must all still happen."""
    port = free_port()
    env = {**os.environ, "OTELSTREAM_SHUTDOWN_GRACE_SECONDS": "1"}
    serve = subprocess.Popen(
        ["scripts/serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's foreground job
    )
    try:
        url = _wait_until_serving(f"http://127.0.0.1:{port}", serve)
        with httpx.Client(base_url=url, timeout=20) as client:
            body = {"pipeline_name": "example", "parameters": {"seconds": 30}}
            messages = iter_sse(client, "POST", "/run-workflow", json=body)
            events = [json.loads(next(messages).data), json.loads(next(messages).data)]
            signalled = time.monotonic()
            os.killpg(serve.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
            events += [json.loads(message.data) for message in messages]
            shut = time.monotonic() - signalled
        _exit_code(serve, timeout=15)
        took = time.monotonic() - signalled
        output = serve.communicate()[0]
    finally:
        _stop(serve)
    assert events[-1]["type"] in ("server_shutdown", "pipeline_completed"), events
    if events[-1]["type"] == "pipeline_completed":
        assert events[-1]["status"] == "cancelled"
    assert shut >= 0.9, "the grace period was skipped"
    assert took < 10, f"the process took {took:.1f} s to exit"
    assert "Application shutdown complete." in output, output
    assert "Traceback" not in output and "CancelledError" not in output, output


def _wait_until_serving(url: str, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 60  # scripts/serve runs `uv sync` first
    while True:
        try:
            if httpx.get(f"{url}/pipelines", timeout=1).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError(f"scripts/serve did not start:\n{process.communicate()[0]}")
        time.sleep(0.1)


def _exit_code(process: subprocess.Popen[str], timeout: float) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(process)
        pytest.fail(f"the server was still running {timeout} s after the signal")


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        if _own_group(process):
            os.killpg(process.pid, signal.SIGKILL)  # uv and the uvicorn it runs
        else:
            process.kill()
        process.wait(timeout=10)


def _own_group(process: subprocess.Popen[str]) -> bool:
    try:
        return os.getpgid(process.pid) == process.pid
    except ProcessLookupError:
        return False


@pytest.mark.parametrize("graceful", [True, False])
def test_the_signal_handler_is_chained_only_when_the_app_asks(graceful: bool) -> None:
    """`create_router(graceful_shutdown=False)` leaves the process's signal handlers alone."""
    app = FastAPI()
    app.include_router(create_router(hub=MemoryHub(), graceful_shutdown=graceful))
    before = signal.getsignal(signal.SIGTERM)

    async def during_lifespan() -> object:
        async with app.router.lifespan_context(app):
            return signal.getsignal(signal.SIGTERM)

    during = asyncio.run(during_lifespan())  # in the main thread, where signals are handled
    assert (during is not before) == graceful
    assert signal.getsignal(signal.SIGTERM) is before


def test_past_the_grace_period_streams_are_told_before_runs_are_cancelled() -> None:
    """The order, not the timing: a run cancelled at the end of the grace period ends at its
    next span and publishes `pipeline_completed`; had that come before a stream's last words,
    the stream would end with it instead of `server_shutdown` (seen once under load). So runs
    are cancelled only once every stream has had its last words."""
    from otelstream._server.shutdown import GracefulShutdown
    from otelstream._server.sse import OpenStreams

    order: list[str] = []
    streams = OpenStreams(limit=10)

    class Stream:
        """Ends a few loop turns after it is told, as a stream's last words take a while."""

        def stop(self) -> None:
            order.append("stream told")
            asyncio.get_running_loop().call_later(0.2, self.ended)

        def ended(self) -> None:
            order.append("stream ended")
            streams.streams.discard(self)  # type: ignore[arg-type]

    class Runner:
        running = 1

        def close(self) -> None:
            order.append("new runs refused")

        def cancel_all(self) -> None:
            order.append("runs cancelled")

    async def scenario() -> None:
        streams.streams.add(Stream())  # type: ignore[arg-type]
        shutdown = GracefulShutdown(Runner(), streams, grace_seconds=0)  # type: ignore[arg-type]
        shutdown._loop = asyncio.get_running_loop()
        shutdown.begin()
        while "runs cancelled" not in order:
            await asyncio.sleep(0.01)

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert order == ["new runs refused", "stream told", "stream ended", "runs cancelled"]
