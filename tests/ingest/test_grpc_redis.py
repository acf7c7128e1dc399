"""The OTLP/gRPC receiver with the Redis hub, turned on by `OTELSTREAM_OTLP_GRPC_ENDPOINT` alone:
the example app in worker processes of its own (uvicorn, and gunicorn with two workers on one
gRPC port); spans sent over gRPC to one worker stream on the other, once, and a Redis that is
down is UNAVAILABLE with the delay to retry after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otelstream.testing import free_port, iter_sse
from tests.conftest import ROOT, app_process
from tests.ingest.test_grpc import TRACES
from tests.ingest.test_ingest import export, span
from tests.redis_server import RedisServer

APP = "examples.fastapi-telemetry.main:app"


@dataclass
class Worker:
    http: httpx.Client
    grpc_port: int

    def send(self, body: bytes) -> ExportTraceServiceResponse:
        with grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            answer: bytes = channel.unary_unary(TRACES)(body, timeout=20)
        return ExportTraceServiceResponse.FromString(answer)


@contextmanager
def worker(redis: RedisServer) -> Iterator[Worker]:
    port = free_port()
    env = {"OTELSTREAM_HUB": redis.url, "OTELSTREAM_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{port}"}
    with app_process(APP, **env) as url, httpx.Client(base_url=url, timeout=20) as client:
        yield Worker(client, port)


@pytest.fixture(scope="module")
def two_workers(redis: RedisServer) -> Iterator[tuple[Worker, Worker]]:
    """Two workers for the module's tests; the test that kills Redis is the last to use them."""
    with worker(redis) as a, worker(redis) as b:
        yield a, b


def started(client: httpx.Client) -> tuple[str, str, Iterator[dict[str, object]]]:
    """A run of the example pipeline: its id, its root span's id, its event stream."""
    body = {"pipeline_name": "example", "parameters": {"seconds": 1.0}}
    run_id = client.post("/runs", json=body).json()["run_id"]
    stream = (json.loads(m.data) for m in iter_sse(client, "GET", f"/runs/{run_id}/events"))
    first = next(stream)
    assert first["type"] == "pipeline_started"
    return run_id, str(first["span_id"]), stream


def test_spans_sent_over_grpc_to_one_worker_stream_on_the_other_once(
    two_workers: tuple[Worker, Worker],
) -> None:
    a, b = two_workers
    run_id, root, stream = started(a.http)
    batch = export(span(run_id, 5, root, "GET /price"), service="pricing")
    for to in (b, a, b):  # an exporter's retry may reach another worker
        assert to.send(batch) == ExportTraceServiceResponse()
    seen = list(stream)
    priced = [e for e in seen if e["name"] == "GET /price"]
    assert [(e["type"], e["service"], e["parent_span_id"]) for e in priced] == [
        ("task_started", "pricing", root),
        ("task_completed", "pricing", root),
    ]
    assert seen[-1]["type"] == "pipeline_completed"


def test_a_redis_that_is_down_is_unavailable_with_the_delay_to_retry_after(
    redis: RedisServer, two_workers: tuple[Worker, Worker]
) -> None:
    _, b = two_workers
    redis.kill()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                b.send(export(span("2" * 32, 5, 1, "x")))
            except grpc.RpcError as error:
                refused = error
                if refused.code() == grpc.StatusCode.UNAVAILABLE:
                    break
            assert time.monotonic() < deadline, "still answered with Redis down"
        trailing = dict(refused.trailing_metadata() or ())  # type: ignore[attr-defined]
        retry = error_details_pb2.RetryInfo.FromString(trailing["google.rpc.retryinfo-bin"])
        assert retry.retry_delay.seconds >= 1
        assert "; retry in " in (refused.details() or "")
    finally:
        redis.start()


@contextmanager
def gunicorn(redis: RedisServer, grpc_port: int, *options: str) -> Iterator[tuple[str, list[str]]]:
    """The example app under gunicorn, two uvicorn workers; yields its URL and its output."""
    port = free_port()
    while port == grpc_port:
        port = free_port()
    env = {
        **os.environ,
        "OTELSTREAM_HUB": redis.url,
        "OTELSTREAM_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
    }
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", APP, "--workers", "2"),
            *("--worker-class", "uvicorn.workers.UvicornWorker"),
            *("--bind", f"127.0.0.1:{port}", "--graceful-timeout", "10"),
            *options,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url, lines = f"http://127.0.0.1:{port}", []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while sum("Application startup complete" in line for line in lines) < 2:
            line = process.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        yield url, lines
    finally:
        process.terminate()
        lines.extend(process.communicate(timeout=30)[0].splitlines(keepends=True))


@pytest.mark.parametrize("options", [(), ("--preload",)], ids=["forked", "preloaded"])
def test_every_gunicorn_worker_serves_the_grpc_port(
    redis: RedisServer, options: tuple[str, ...]
) -> None:
    """Each worker's lifespan binds the port (SO_REUSEPORT), also when the app was imported
    before the fork (`--preload`): the server is made in the worker, after it."""
    if redis.process is None:
        redis.start()
    grpc_port = free_port()
    with gunicorn(redis, grpc_port, *options) as (url, lines):
        with httpx.Client(base_url=url, timeout=20) as client:
            run_id, root, stream = started(client)
            target = Worker(client, grpc_port)
            for number in range(6):  # a channel each: the kernel spreads them over the workers
                sent = export(span(run_id, 10 + number, root, f"call {number}"))
                assert target.send(sent) == ExportTraceServiceResponse()
            names = {e["name"] for e in stream if e["type"] == "task_completed"}
        assert {f"call {number}" for number in range(6)} <= names
    output = "".join(lines)
    assert output.count("Booting worker") == 2 and "Worker failed to boot" not in output, output
