"""The Node service (examples/node-service, the OpenTelemetry JS SDK with its exporters at their
defaults) called from a running pipeline of the example: its spans stream live, under the call,
before the run's end, through the memory hub and through Redis with two workers."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest

from otelstream.client import Client
from otelstream.testing import free_port, read_events
from tests.conftest import ROOT, app_process, app_subprocesses, otelstream

SERVICE = ROOT / "examples" / "node-service"
APP = "examples.fastapi-telemetry.main:app"


@pytest.fixture(scope="module")
def node() -> str:
    """node, with the service's packages installed (once, into its gitignored node_modules)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI"):
            pytest.fail("the Node service tests need node and npm", pytrace=False)
        pytest.skip("node and npm are not installed")
    installed = SERVICE / "node_modules" / "@opentelemetry"
    if not all(
        (installed / name).is_dir() for name in ("sdk-trace-node", "exporter-trace-otlp-grpc")
    ):
        subprocess.run(
            [npm, "install", "--no-package-lock", "--no-audit", "--no-fund"],
            cwd=SERVICE,
            check=True,
            timeout=300,
            capture_output=True,
        )
    return node


@contextmanager
def node_service(node: str, port: int, traces_url: str, **more: str) -> Iterator[str]:
    env = {
        **os.environ,
        "PORT": str(port),
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces_url,
        **more,
    }
    process = subprocess.Popen(
        [node, "--require", "./tracing.js", "server.js"],
        cwd=SERVICE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.communicate()[0]
                    raise RuntimeError(f"the Node service did not start:\n{output}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=20)


@pytest.mark.parametrize("hub", ["memory", "redis"])
def test_a_pipeline_that_calls_the_node_service_streams_its_spans(
    node: str, hub: str, request: pytest.FixtureRequest
) -> None:
    port = free_port()
    env = {"OTELSTREAM_OTLP_INGEST": "true", "PRICING_URL": f"http://127.0.0.1:{port}"}
    with ExitStack() as stack:
        more = {}
        if hub == "redis":
            env["OTELSTREAM_HUB"] = request.getfixturevalue("redis").url
            # the memory case proves the SDK's defaults (a batch every 5 s, which each run
            # waits for); here the same flows, sent sooner
            more["OTEL_BSP_SCHEDULE_DELAY"] = "300"
            workers = stack.enter_context(app_subprocesses(APP, 2, **env))
            (watch, _), (receive, _) = workers  # the service sends to the second
        else:
            watch = receive = stack.enter_context(app_process(APP, **env))
        stack.enter_context(node_service(node, port, f"{receive}/v1/traces", **more))
        with httpx.Client(base_url=watch, timeout=30) as client:
            body = {"pipeline_name": "priced", "parameters": {"items": 4}}
            events = read_events(client, "POST", "/run-workflow", json=body)
            run = client.get(f"/runs/{events[0]['run_id']}").json()
        with Client(watch) as ours:  # the client, and the command piped (one line an event)
            told = list(ours.run("priced", {"items": 4}))
            tree = ours.get_run(told[0]["run_id"])["tree"]
        lines = otelstream("run", watch, "priced", "-p", "items=4").stdout.splitlines()
    assert told[-1]["status"] == "success" and any(e.get("service") == "pricing" for e in told)
    (called_again,) = next(c for c in tree["children"] if c["name"] == "quote")["children"]
    assert [kid.get("service") for kid in called_again["children"]] == ["pricing"]
    assert any(" [pricing]  done" in line and "price items" in line for line in lines), lines
    assert events[-1]["type"] == "pipeline_completed" and events[-1]["status"] == "success"
    call = next(e for e in events if e["name"] == "GET /price" and "service" not in e)
    served = [e for e in events if e.get("service") == "pricing"]
    by_name: dict[str, Any] = {}
    for event in served:
        by_name.setdefault(event["name"], []).append(event["type"])
    server = next(e for e in served if e["parent_span_id"] == call["span_id"])
    inner = next(e for e in served if e["name"] == "price items")
    assert inner["parent_span_id"] == server["span_id"]
    assert all(types == ["task_started", "task_completed"] for types in by_name.values())
    # in the tree: the service's server span under the call, its work under that
    quote = next(c for c in run["tree"]["children"] if c["name"] == "quote")
    (called,) = quote["children"]
    (answered,) = called["children"]
    assert answered["span_id"] == server["span_id"]
    assert [kid["name"] for kid in answered["children"]] == ["price items"]


def test_the_node_services_grpc_exporter_streams_its_spans(node: str) -> None:
    """The JS SDK's OTLP/gRPC exporter, to the app's gRPC receiver alone (no OTLP/HTTP)."""
    port, grpc_port = free_port(), free_port()
    env = {
        "OTELSTREAM_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
        "PRICING_URL": f"http://127.0.0.1:{port}",
    }
    with app_process(APP, **env) as app:
        grpc_url = f"http://127.0.0.1:{grpc_port}"
        grpc = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_BSP_SCHEDULE_DELAY": "300"}
        with node_service(node, port, grpc_url, **grpc):
            with httpx.Client(base_url=app, timeout=30) as client:
                assert client.post("/v1/traces").status_code == 404  # only gRPC is on
                body = {"pipeline_name": "priced", "parameters": {"items": 2}}
                events = read_events(client, "POST", "/run-workflow", json=body)
    assert events[-1]["type"] == "pipeline_completed" and events[-1]["status"] == "success"
    call = next(e for e in events if e["name"] == "GET /price" and "service" not in e)
    served = [e for e in events if e.get("service") == "pricing"]
    server = next(e for e in served if e["parent_span_id"] == call["span_id"])
    inner = [e for e in served if e["name"] == "price items"]
    assert [e["type"] for e in inner] == ["task_started", "task_completed"]
    assert inner[0]["parent_span_id"] == server["span_id"]
