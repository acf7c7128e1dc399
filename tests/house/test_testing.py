"""otelstream.testing's own helpers, against a real server: what users' tests lean on."""

from __future__ import annotations

import threading

import httpx
import pytest
from fastapi import FastAPI

from otelstream.client import Client
from otelstream.fastapi import create_router
from otelstream.testing import UvicornServer, wait_for_run
from tests.conftest import make_telemetry


def test_wait_for_run_returns_the_ended_run_and_times_out_on_a_running_one() -> None:
    telemetry = make_telemetry()
    gate = threading.Event()
    app = FastAPI()
    app.include_router(
        create_router(
            hub=telemetry.hub,
            pipelines={"quick": lambda: None, "held": lambda: gate.wait(10)},
            tracer_provider=telemetry.provider,
            prefix="/otel",
        )
    )
    try:
        with (
            UvicornServer(app) as server,
            httpx.Client(base_url=f"{server.url}/otel", timeout=10) as http,
            Client(f"{server.url}/otel") as client,
        ):
            quick = client.start("quick").run_id
            for reader in (http, client):
                run = wait_for_run(reader, quick)
                assert (run["run_id"], run["status"]) == (quick, "success")
            held = client.start("held").run_id
            with pytest.raises(TimeoutError, match=f"run {held} is still running after 0.2 s"):
                wait_for_run(http, held, timeout=0.2)
            gate.set()
            assert wait_for_run(client, held)["status"] == "success"
    finally:
        gate.set()
        telemetry.provider.shutdown()
