"""Part 4: resident memory over many finished runs levels off at the retention bounds.

Runs in a fresh interpreter of its own (`python -m bench.memory --worker`), so
that nothing else the harness did is in its RSS. Every run has one subscriber
that reads and frames every event, as a browser's stream would.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys

from bench._common import ROOT, BenchError, Goal, Section, python_path, rss_bytes, table

_MiB = 1024 * 1024


def _worker(runs: int, spans: int, bound: int, every: int) -> None:
    """Prints one JSON line per checkpoint: runs finished, RSS, runs the hub holds."""
    from opentelemetry.sdk.trace import TracerProvider

    from bench.spans import _Readers
    from otelstream import EventStreamProcessor, MemoryHub, Settings, streamed_run

    hub = MemoryHub(Settings(max_finished_runs=bound))
    provider = TracerProvider()
    provider.add_span_processor(EventStreamProcessor(hub))
    tracer = provider.get_tracer("bench")
    readers = _Readers()
    try:
        for done in range(1, runs + 1):
            with streamed_run("memory", tracer_provider=provider) as run:
                reader = readers.start(hub, run.run_id, 1)
                for _ in range(spans):
                    with tracer.start_as_current_span("task:step"):
                        pass
            if reader.result(timeout=30) != [2 * spans + 2]:
                raise BenchError(f"run {done}: the subscriber missed events")
            if done % every == 0:
                gc.collect()
                held = len(hub._runs)  # peeking: no public count of retained runs yet
                print(json.dumps({"runs": done, "rss": rss_bytes(os.getpid()), "held": held}))
                sys.stdout.flush()
    finally:
        readers.close()
        provider.shutdown()


def run(smoke: bool) -> Section:
    runs, spans, bound, every = (200, 5, 50, 25) if smoke else (10_000, 20, 1_000, 500)
    command = [sys.executable, "-P", "-m", "bench.memory", "--worker", str(runs), str(spans)]
    command += [str(bound), str(every)]
    env = {**os.environ, "PYTHONPATH": python_path()}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise BenchError(f"memory worker failed:\n{done.stderr[-2000:]}")
    points = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if len(points) != runs // every:
        raise BenchError(f"memory worker reported {len(points)} checkpoints")
    shown = [p for p in points if p["runs"] in {every, bound, 2 * bound, runs // 2, runs}]
    if points[-1] not in shown:
        shown.append(points[-1])
    rows = [[f"{p['runs']:,}", f"{p['rss'] / _MiB:.1f}", f"{p['held']:,}"] for p in shown]
    # levelled off: past twice the bound, RSS may not grow by more than 5%
    settled = next(p for p in points if p["runs"] >= 2 * bound)
    growth = points[-1]["rss"] / settled["rss"] - 1
    held_ok = all(p["held"] <= bound for p in points)
    section = Section(
        "4. Memory over time",
        table(["runs finished", "RSS MiB", "runs held by the hub"], rows),
        [
            f"{runs:,} runs of {spans} task spans ({2 * spans + 2} events) one after another, each "
            f"read to its end by one subscriber; `Settings(max_finished_runs={bound:,})`, other "
            f"settings at their defaults. RSS after `gc.collect()` at each checkpoint; from "
            f"{settled['runs']:,} runs to {runs:,} it changed by {growth * 100:+.1f}%.",
        ],
    )
    section.goals = [
        Goal(
            "RSS levels off at the retention bound",
            f"≤ +5% from {settled['runs']:,} to {runs:,} runs, ≤ {bound:,} runs held",
            f"{growth * 100:+.1f}%, ≤ {max(p['held'] for p in points):,} held",
            growth <= 0.05 and held_ok,
        )
    ]
    section.summary = [
        f"over {runs:,} finished runs resident memory levels off at the retention bound "
        f"({growth * 100:+.1f}% from {settled['runs']:,} to {runs:,} runs)."
    ]
    return section


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=4, type=int, required=True)
    _worker(*parser.parse_args().worker)
