"""Logging that can't hurt: a malformed log call never raises into the caller, and otelstream's
own lines reach the console of an app that configured none.

The malformed calls run in a process of their own, set up as an application is (one
`setup_telemetry`, nothing else on the root logger): pytest puts handlers of its own on the root
logger, and its capture handler fails the test on a record that does not format.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading

import httpx
import pytest
from opentelemetry.sdk._logs import LoggerProvider

from otelstream.processors._log_handlers import SafeLoggingHandler
from otelstream.testing import free_port, read_events
from tests.conftest import ROOT

MALFORMED = r"""
import asyncio, json, logging, sys
from otelstream import MemoryHub, streamed_run
from otelstream.telemetry import setup_telemetry
from otelstream.testing import next_batch

hub = MemoryHub()
telemetry = setup_telemetry(hub)
log = logging.getLogger("app")


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def malformed() -> None:
    log.warning("n=%d", "abc")
    log.info("%s", Unprintable())


malformed()  # outside a run
with streamed_run("safe") as run:
    malformed()
    log.info("still streaming")


async def read() -> list[dict]:
    events = []
    async with hub.subscribe(run.run_id) as subscription:
        while (batch := await next_batch(subscription, timeout=5)) is not None:
            events.extend(event.to_dict() for event in batch)
    return events


print(json.dumps(asyncio.run(read())))
telemetry.shutdown()
"""


def test_malformed_log_calls_are_reported_not_raised_inside_and_outside_a_run() -> None:
    done = subprocess.run(
        [sys.executable, "-c", MALFORMED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
    )
    assert done.returncode == 0, done.stderr
    # The stdlib's way: one "--- Logging error ---" report on stderr for each failed record.
    assert done.stderr.count("--- Logging error ---") == 4, done.stderr
    assert "not all arguments converted" in done.stderr or "%d format" in done.stderr
    assert "no text for you" in done.stderr
    events = json.loads(done.stdout)
    assert events[-1]["type"] == "pipeline_completed"
    assert events[-1]["status"] == "success"
    assert [e["message"] for e in events if e["type"] == "task_log"] == ["still streaming"]


def test_safe_handler_calls_handle_error(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = SafeLoggingHandler(logger_provider=LoggerProvider())
    failed: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", failed.append)
    record = logging.LogRecord("app", logging.WARNING, __file__, 1, "n=%d", ("abc",), None)
    handler.handle(record)
    assert failed == [record]


CONSOLE = r"""
import logging, sys
from otelstream.telemetry import setup_telemetry

telemetry = setup_telemetry()
runs = logging.getLogger("otelstream.runs")
runs.warning("run %s failed: %s", "abc", "boom")  # only OpenTelemetry's handler on the root
own = logging.StreamHandler(sys.stdout)
own.setFormatter(logging.Formatter("app's own: %(message)s"))
logging.getLogger().addHandler(own)
runs.warning("run %s failed", "def")  # the app's handler shows it, and only it
telemetry.shutdown()
"""


def test_otelstreams_lines_reach_the_console_until_the_app_configures_one() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CONSOLE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "WARNING:     otelstream.runs: run abc failed: boom\n"
    assert done.stdout == "app's own: run def failed\n"


def test_the_examples_console_shows_otelstreams_own_lines() -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            *("-m", "uvicorn", "examples.fastapi-telemetry.main:app"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        cwd=ROOT,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=20) as client:
            _wait_until_up(client, url, process)
            failing = {"pipeline_name": "failing", "parameters": {"seconds": 0.01}}
            events = read_events(client, "POST", f"{url}/run-workflow", json=failing)
            run_id = events[0]["run_id"]
            slow = {"pipeline_name": "example", "parameters": {"seconds": 1.5}}
            started = threading.Event()

            def watch() -> None:
                with httpx.Client(timeout=20) as other:
                    with other.stream("POST", f"{url}/run-workflow", json=slow) as response:
                        for _ in response.iter_bytes():
                            started.set()

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            assert started.wait(10)
            process.send_signal(signal.SIGINT)  # Ctrl-C with a run in flight
            watcher.join(20)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        stderr = process.communicate(timeout=30)[1]
    assert f"WARNING:     otelstream.runs.outcome: run {run_id} failed: ValueError" in stderr, (
        stderr
    )
    assert "otelstream._server.shutdown: shutting down; 1 run(s) have" in stderr, stderr


def _wait_until_up(client: httpx.Client, url: str, process: subprocess.Popen[str]) -> None:
    for _ in range(400):
        try:
            if client.get(f"{url}/pipelines", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.communicate()[1]
        threading.Event().wait(0.05)
    raise AssertionError("the example did not start")
