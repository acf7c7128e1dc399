"""The README's Python, run as written: the drop-in wires a processor and the router.

The snippet names what a user already has (`provider`, `app`, a pipeline); the test supplies
those and nothing else, then checks that a run of the pipeline streams.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from otelstream.testing import UvicornServer, read_events
from tests.conftest import ROOT


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_the_readmes_drop_in_runs_as_written() -> None:
    (snippet,) = python_blocks()
    provider = TracerProvider()
    tracer = provider.get_tracer("readme")

    def nightly() -> None:
        with tracer.start_as_current_span("task:download"):
            pass

    names: dict[str, Any] = {
        "provider": provider,
        "app": FastAPI(),
        "nightly": nightly,
    }
    exec(compile(snippet, "README.md", "exec"), names)
    with UvicornServer(names["app"]) as server:
        import httpx

        with httpx.Client(base_url=server.url, timeout=10) as client:
            body = {"pipeline_name": "nightly"}
            events = read_events(client, "POST", "/run-workflow", json=body)
    assert [(e["type"], e["name"]) for e in events] == [
        ("pipeline_started", "nightly"),
        ("task_started", "download"),
        ("task_completed", "download"),
        ("pipeline_completed", "nightly"),
    ]
    provider.shutdown()
