"""The README's "Logs and progress" set-up, run exactly as written, streams logs and progress.

The snippet never sets the global logger provider, which `otelstream.progress` used to rely
on alone: progress then went nowhere, in silence. Each case runs in a process of its own,
since a process's global logger provider can be set only once (and other tests set it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT

MARKER = "add_log_record_processor(EventLogProcessor(hub))"


def logs_snippet() -> str:
    """The python block holding the logging set-up, from the README or the docs page holding it."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    for page in pages:
        for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.S):
            if MARKER in block and "progress(" in block:
                return str(block)
    raise AssertionError(f"no python block with {MARKER} in the README or docs/")


PREAMBLE = """\
import logging
from opentelemetry.sdk.trace import TracerProvider
from otelstream import EventStreamProcessor, MemoryHub, streamed_run

hub = MemoryHub()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(EventStreamProcessor(hub))
tracer = tracer_provider.get_tracer("snippet")
log = logging.getLogger("snippet.task")
paths = ["a.csv", "b.csv", "c.csv"]
_run = streamed_run("snippet", tracer_provider=tracer_provider)
_handle = _run.__enter__()
"""

EPILOGUE = """
_run.__exit__(None, None, None)
import asyncio, json
from otelstream.testing import next_batch

async def _drain():
    events = []
    async with hub.subscribe(_handle.run_id) as subscription:
        while (batch := await next_batch(subscription, timeout=5)):
            events.extend(event.to_dict() for event in batch)
    return events

print(json.dumps(asyncio.run(_drain())))
"""


def run_script(source: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "snippet.py"
    script.write_text(source)
    return subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_readmes_logging_snippet_streams_logs_and_progress(tmp_path: Path) -> None:
    snippet = logs_snippet()
    assert "set_logger_provider" not in snippet  # the set-up this test is about
    done = run_script(PREAMBLE + snippet + EPILOGUE, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "EventLogProcessor" not in done.stderr  # no warning: it reached the stream
    events = json.loads(done.stdout.splitlines()[-1])
    logs = [e["message"] for e in events if e["type"] == "task_log"]
    assert logs == ["reading a.csv", "reading b.csv", "reading c.csv"]
    progress = [e for e in events if e["type"] == "task_progress"]
    assert progress, [e["type"] for e in events]
    assert (progress[-1]["done"], progress[-1]["total"], progress[-1]["message"]) == (3, 3, "c.csv")
    task = next(e for e in events if e["type"] == "task_started")
    assert {e["span_id"] for e in progress} == {task["span_id"]}


UNREACHED = """
from opentelemetry.sdk._logs import LoggerProvider
from otelstream import progress

logger_provider = LoggerProvider()  # never set as the global one, and no handler routes to it
with tracer.start_as_current_span("task:ingest"):
    for i in range(3):
        progress(i, 3)
"""


def test_progress_that_reaches_no_stream_says_so_once_and_what_to_do(tmp_path: Path) -> None:
    done = run_script(PREAMBLE + textwrap.dedent(UNREACHED) + EPILOGUE, tmp_path)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "reached no EventLogProcessor" in line]
    assert len(warnings) == 1, done.stderr
    assert "set_logger_provider" in warnings[0] and "setup_telemetry" in warnings[0]
    events = json.loads(done.stdout.splitlines()[-1])
    assert not [e for e in events if e["type"] == "task_progress"]
