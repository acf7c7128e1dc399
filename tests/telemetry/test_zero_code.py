"""Zero-code enablement (issue 29.4): `opentelemetry-instrument` with `OTELSTREAM_HUB` set streams
a program's runs through the `opentelemetry_post_instrument` entry point, once each, whether the
program also wires otelstream itself or not; off with `OTELSTREAM_AUTO_INSTRUMENT=false`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from otelstream.events import Event
from otelstream.hubs.redis import RedisHub
from otelstream.testing import RedisServer, next_batch
from tests.redis_server import redis_server

ROOT = Path(__file__).resolve().parents[2]
INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")


def run_program(url: str, order: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "OTELSTREAM_HUB": url,
        "OTEL_TRACES_EXPORTER": "console",  # the distro's provider, exporting nowhere that matters
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
        "PYTHONPATH": str(ROOT),
        **extra,
    }
    return instrumented(["-m", "tests.apps.zero_code", order], env)


def instrumented(
    program: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`opentelemetry-instrument python PROGRAM…` run to its end, output captured; exits 0."""
    done = subprocess.run(
        [str(INSTRUMENT), sys.executable, *program],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done


async def events_of(url: str, run_id: str) -> list[Event]:
    hub = RedisHub(url)
    try:
        events: list[Event] = []
        async with hub.subscribe(run_id) as subscription:
            while (batch := await next_batch(subscription, 10)) is not None:
                assert batch, "the run did not end in the stream"
                events.extend(batch)
        return events
    finally:
        hub.close()


@pytest.mark.parametrize("order", ["none", "setup_telemetry", "processor"])
def test_zero_code_streams_each_span_once(empty_redis: RedisServer, order: str) -> None:
    done = run_program(empty_redis.url, order)
    assert "zero-code streaming on, to hub redis://" in done.stderr
    run_id = done.stdout.split()[-1]
    events = asyncio.run(events_of(empty_redis.url, run_id))
    kinds = Counter((event.type, event.name) for event in events)
    assert kinds[("task_started", "work")] == 1, kinds
    assert kinds[("task_completed", "work")] == 1, kinds
    assert kinds[("pipeline_completed", "zero_code")] == 1, kinds
    assert sum(1 for event in events if event.type == "task_log") == 1, kinds


def test_zero_code_off(empty_redis: RedisServer) -> None:
    done = run_program(empty_redis.url, "none", OTELSTREAM_AUTO_INSTRUMENT="false")
    assert "zero-code" not in done.stderr
    run_id = done.stdout.split()[-1]

    async def stored() -> object:
        hub = RedisHub(empty_redis.url)
        try:
            return await hub.get_run(run_id)
        finally:
            hub.close()

    assert asyncio.run(stored()) is None


def test_zero_code_worker_joins_a_run_started_elsewhere(empty_redis: RedisServer) -> None:
    """The worker's code knows only OpenTelemetry: the carrier's run header and the entry point
    put its span into the run this process streams, once."""
    import json

    from opentelemetry.sdk.trace import TracerProvider

    from otelstream.processors import EventStreamProcessor
    from otelstream.propagation import propagator
    from otelstream.runs import streamed_run

    hub = RedisHub(empty_redis.url)
    provider = TracerProvider()
    provider.add_span_processor(EventStreamProcessor(hub))
    try:
        with streamed_run("dispatch", tracer_provider=provider) as run:
            carrier: dict[str, str] = {}
            propagator().inject(carrier)
            env = {
                **os.environ,
                "OTELSTREAM_HUB": empty_redis.url,
                "OTEL_TRACES_EXPORTER": "none",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none",
                "OTEL_PROPAGATORS": "tracecontext,baggage,otelstream_run",
                "CARRIER": json.dumps(carrier),
            }
            worker = ROOT / "tests" / "apps" / "zero_code_worker.py"
            instrumented([str(worker)], env)
        provider.force_flush()
    finally:
        provider.shutdown()
        hub.close()
    events = asyncio.run(events_of(empty_redis.url, run.run_id))
    kinds = Counter((event.type, event.name) for event in events)
    assert kinds[("task_started", "remote_work")] == 1, kinds
    assert kinds[("task_completed", "remote_work")] == 1, kinds


def test_a_run_ended_as_get_returns_waits_for_the_zero_code_workers_spans(
    celery: tuple[RedisServer, dict[str, str]],
) -> None:
    """The dispatcher ends its run as `.get()` returns (the worker stores the result before its
    task's span ends): the run's end waits for the worker's span under the dispatch's PRODUCER
    span to end, so every span of the worker is in the run, ended, before `pipeline_completed`."""
    server, env = celery
    done = instrumented(["-m", "tests.apps.zero_code_celery", "--at-once"], env, timeout=90)
    run_id = done.stdout.strip()
    events = asyncio.run(events_of(server.url, run_id))
    kinds = Counter((e.type, e.name) for e in events)
    told = [(e.seq, e.type, e.name, e.time_ns // 1_000_000 % 100_000) for e in events]
    for name in ("run/zero_code_celery.resize", "resize-image"):
        assert kinds[("task_started", name)] == 1, told
        assert kinds[("task_completed", name)] == 1, told
    assert not [e for e in events if e.error_type == "Unfinished"], told
    assert events[-1].type == "pipeline_completed" and events[-1].status == "success"


@pytest.fixture(scope="module")
def celery() -> Iterator[tuple[RedisServer, dict[str, str]]]:
    """A prefork Celery worker under `opentelemetry-instrument`, shared by the module's Celery
    tests (each its own runs), on a redis-server of its own: the other tests empty theirs, and
    an emptied broker loses the worker's queue bindings. The server, and the env to dispatch."""
    with contextmanager(redis_server)() as server, celery_worker(server) as env:
        yield server, env


@contextmanager
def celery_worker(redis: RedisServer) -> Iterator[dict[str, str]]:
    """A prefork Celery worker under `opentelemetry-instrument` on `redis`; yields the env."""
    broker = redis.url[: -len("/0")] + "/1"
    env = {
        **os.environ,
        "OTELSTREAM_HUB": redis.url,
        "CELERY_BROKER": broker,
        "OTEL_PROPAGATORS": "tracecontext,baggage,otelstream_run",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "PYTHONPATH": str(ROOT),
    }
    celery = Path(sys.executable).with_name("celery")
    command = [str(INSTRUMENT), str(celery), "-A", "tests.apps.zero_code_celery", "worker"]
    worker = subprocess.Popen(
        [*command, "--pool=prefork", "-c", "1", "--loglevel=warning", "--without-mingle"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield env
    finally:
        worker.kill()
        worker.wait(10)


def test_zero_code_celery_prefork_worker_streams_live(
    celery: tuple[RedisServer, dict[str, str]],
) -> None:
    """A prefork Celery worker started by `opentelemetry-instrument` only (no otelstream code):
    its task's spans stream live under the dispatching task's, once each."""
    streams_live(*celery)


def streams_live(server: RedisServer, env: dict[str, str]) -> None:
    dispatcher = subprocess.Popen(
        [str(INSTRUMENT), sys.executable, "-m", "tests.apps.zero_code_celery"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert dispatcher.stdout is not None and dispatcher.stdin is not None
        run_id = dispatcher.stdout.readline().strip()
        assert run_id, "the dispatcher printed no run"

        async def watch() -> list[Event]:
            hub = RedisHub(server.url)
            events: list[Event] = []
            try:
                while await hub.position(run_id) is None:  # its first event is being written
                    await asyncio.sleep(0.05)
                async with hub.subscribe(run_id) as subscription:
                    while not any(
                        e.type == "task_completed" and e.name == "run/zero_code_celery.resize"
                        for e in events
                    ):
                        batch = await next_batch(subscription, 60)
                        assert batch, f"the worker's task never streamed: {events}"
                        events.extend(batch)
                    assert dispatcher.stdin is not None
                    dispatcher.stdin.write("end\n")
                    dispatcher.stdin.flush()
                    while (batch := await next_batch(subscription, 30)) is not None:
                        assert batch, "the run did not end"
                        events.extend(batch)
            finally:
                hub.close()
            return events

        events = asyncio.run(asyncio.wait_for(watch(), 120))
        assert dispatcher.wait(30) == 0
        spans = {e.span_id: e for e in events if e.type == "task_started"}
        kinds = Counter((e.type, e.name) for e in events)
        for name in ("run/zero_code_celery.resize", "resize-image"):
            assert kinds[("task_started", name)] == 1, kinds
            assert kinds[("task_completed", name)] == 1, kinds
        task = next(e for e in spans.values() if e.name == "run/zero_code_celery.resize")
        publish = spans[task.parent_span_id]  # the dispatcher's apply_async span
        assert publish.name == "apply_async/zero_code_celery.resize"
        assert spans[publish.parent_span_id].name == "dispatch"
        assert events[-1].type == "pipeline_completed"
    finally:
        dispatcher.kill()
        dispatcher.wait(10)
        for stream in (dispatcher.stdin, dispatcher.stdout):
            if stream is not None:
                stream.close()
