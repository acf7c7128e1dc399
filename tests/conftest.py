from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from otelstream import EventStreamProcessor, MemoryHub, Settings, _errors
from otelstream.events import Event
from otelstream.hubs import Hub
from otelstream.testing import free_port, next_batch

from .pages import browser, page  # noqa: F401  (fixtures, for every test module)
from .redis_server import (  # noqa: F401  (fixtures, for every test module)
    empty_redis,
    empty_redis_cluster,
    redis,
    redis_cluster,
)

ROOT = Path(__file__).resolve().parent.parent

# logfire (a dev dependency, for the logfire drop-in's tests) registers a pydantic plugin that
# every process building a pydantic model would import: half a second of CPU for each of the
# suite's ~150 app processes, and no test instruments pydantic. Inherited by the app processes.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "logfire-plugin")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "internal_errors: the test expects otelstream to log internal errors"
    )


@pytest.fixture(autouse=True)
def no_internal_errors(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """otelstream swallows its own errors in production; a test fails when one happens."""
    _errors.errors_limit.reset()  # the rate limit must not hide one test's error from the next
    _errors.warnings_limit.reset()
    yield
    if request.node.get_closest_marker("internal_errors"):
        return
    errors = [r for r in caplog.records if r.getMessage().startswith("otelstream: internal error")]
    assert not errors, f"otelstream logged internal errors: {errors}"


class Gate:
    """Holds a pipeline in the middle of its run until the test opens it."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()

    def __call__(self) -> None:
        self.reached.set()
        # a bound for a test that died, not a timing: a loaded machine starts a subprocess slowly
        assert self.opened.wait(60), "the test never opened the gate"


@dataclass
class Telemetry:
    """A tracer provider of the test's own, with otelstream and an in-memory exporter."""

    provider: TracerProvider
    hub: MemoryHub
    exporter: InMemorySpanExporter
    tracer: trace.Tracer


class UrandomIdGenerator(IdGenerator):
    """Hypothesis seeds `random` for each example, and so the SDK's default ids: not these."""

    def generate_span_id(self) -> int:
        return int.from_bytes(os.urandom(8)) or 1

    def generate_trace_id(self) -> int:
        return int.from_bytes(os.urandom(16)) or 1


def make_telemetry(**settings: object) -> Telemetry:
    hub = MemoryHub(Settings(**settings))  # type: ignore[arg-type]
    provider = TracerProvider(id_generator=UrandomIdGenerator())
    provider.add_span_processor(EventStreamProcessor(hub))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Telemetry(provider, hub, exporter, provider.get_tracer("tests"))


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    result = make_telemetry()
    yield result
    result.provider.shutdown()


@contextmanager
def app_process(app: str, **env: str) -> Iterator[str]:
    """`uvicorn APP` in a process of its own (as a user runs it), on a free port; yields its URL."""
    with app_subprocess(app, **env) as (url, _process):
        yield url


@contextmanager
def app_subprocess(app: str, **env: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """As `app_process`, and the process too, for tests that signal it."""
    with app_subprocesses(app, 1, **env) as (started,):
        yield started


@contextmanager
def app_subprocesses(
    app: str, count: int, **env: str
) -> Iterator[list[tuple[str, subprocess.Popen[str]]]]:
    """`count` processes of `app`, started at once (a start is a second or two of imports, so
    workers started one after the other add them up); each one's URL and process, once every
    one answers."""
    started: list[tuple[str, subprocess.Popen[str]]] = []
    try:
        for _ in range(count):
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            started.append((f"http://127.0.0.1:{port}", process))
        deadline = time.monotonic() + 60  # a start takes ~10 s on a busy 2-core machine
        for url, process in started:
            _wait_until_serving(app, url, process, deadline)
        yield started
    finally:
        for _, process in started:
            if process.poll() is None:
                process.terminate()
        outputs = [process.communicate(timeout=20)[0] for _, process in started]
        for output in outputs:
            if "Exception in ASGI application" in output:
                raise AssertionError(f"{app} failed while serving:\n{output}")


def _wait_until_serving(
    app: str, url: str, process: subprocess.Popen[str], deadline: float
) -> None:
    while True:
        try:
            if httpx.get(f"{url}/pipelines", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()  # else reading its output waits for an exit that never comes
            raise RuntimeError(f"{app} did not start:\n{process.communicate()[0]}")
        time.sleep(0.05)


REDIS_APP = "tests.apps.redis_example:app"


@contextmanager
def workers_on(
    hub_url: str, *, count: int = 2, app: str = REDIS_APP, **env: str
) -> Iterator[list[httpx.Client]]:
    """`count` worker processes of `app` sharing the hub at `hub_url`; a client for each."""
    with (
        app_subprocesses(app, count, OTELSTREAM_HUB=hub_url, **env) as started,
        contextlib.ExitStack() as stack,
    ):
        yield [stack.enter_context(httpx.Client(base_url=url, timeout=20)) for url, _ in started]


def events_of(hub: MemoryHub, run_id: str) -> list[dict[str, object]]:
    """Every event of a finished run, read through a real subscription."""
    import asyncio

    async def drain() -> list[dict[str, object]]:
        events: list[dict[str, object]] = []
        async with hub.subscribe(run_id) as subscription:
            while (batch := await next_batch(subscription, timeout=5)) is not None:
                assert batch, "the run did not finish"
                events.extend(event.to_dict() for event in batch)
        return events

    return asyncio.run(drain())


EXAMPLE_SHAPE = [
    ("pipeline_started", "example"),
    ("task_started", "compute"),
    ("task_completed", "compute"),
    ("task_started", "finalize"),
    ("task_completed", "finalize"),
    ("pipeline_completed", "example"),
]
"""(type, name) of the example app's `example` pipeline, event by event."""

NESTED_SHAPE = [
    ("pipeline_started", "nested"),
    ("task_started", "prepare"),
    ("task_started", "load"),
    ("task_completed", "load"),
    ("task_started", "clean"),
    ("task_completed", "clean"),
    ("task_completed", "prepare"),
    ("task_started", "report"),
    ("task_completed", "report"),
    ("pipeline_completed", "nested"),
]
"""The same for its `nested` pipeline."""


def shape(events: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(event["type"], event["name"]) for event in events]


# -- hub events, as a span processor would publish them ----------------------------------------

RUN = "0af7651916cd43dd8448eb211c80319c"


def start(hub: Hub, run_id: str = RUN) -> None:
    hub.publish(run_id, Event("pipeline_started", "p", run_id, 1, None, time.time_ns()))


def task(hub: Hub, span_id: int, run_id: str = RUN) -> None:
    hub.publish(run_id, Event("task_started", f"t{span_id}", run_id, span_id, 1, time.time_ns()))


def step(hub: Hub, span_id: int, run_id: str = RUN) -> None:
    """One event that leaves no task open (a task's end): the run's end adds none for it."""
    now = time.time_ns()
    event = Event("task_completed", f"t{span_id}", run_id, span_id, 1, now, duration_ns=0)
    hub.publish(run_id, event)


def finish(hub: Hub, run_id: str = RUN, status: str = "success") -> None:
    event = Event("pipeline_completed", "p", run_id, 1, None, time.time_ns(), status=status)
    hub.publish(run_id, event)


EXAMPLE = "examples.fastapi-telemetry.main:app"


def example_app() -> Iterator[str]:
    """The example app in a uvicorn process, for a module-scoped fixture."""
    with app_process(EXAMPLE) as url:
        yield url


def otelstream(*args: str) -> subprocess.CompletedProcess[str]:
    """The `otelstream` command, as a user runs it (wide enough not to wrap)."""
    return subprocess.run(
        [sys.executable, "-m", "otelstream", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=30,
    )
