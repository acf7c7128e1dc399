"""Part 5: parts 2 and 3 through the Redis hub, beside the memory hub, in the same run.

A `redis-server` is started on a free port of 127.0.0.1 for the part (no
persistence) and stopped after it. The servers are part 2's and 3's app,
`bench.servers.otelstream_app`, whose hub is the one `OTELSTREAM_HUB` names:
`memory` for one uvicorn process, the Redis URL for the other, started side by
side and measured one at a time with part 2's raw-socket client and part 3's
selector client. The latency is measured twice through Redis: with the pipeline
in the uvicorn process (as in part 2) and with it in a second process
(`bench.servers.publisher`), which is what the Redis hub is for. Last, the worker
lease's renewals against the same figures (`bench.heartbeat`, issue 19).

Without redis-server (or redis-py) the full run reports the part as not
measured; `--smoke` fails when `CI` is set and skips the part otherwise.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO

from bench import fanout, heartbeat, latency
from bench._client import Client
from bench._common import (
    ROOT,
    BenchError,
    Goal,
    Section,
    Server,
    cpu_seconds,
    find_redis,
    percentile,
    python_path,
    redis_server,
    servers,
    table,
)
from otelstream.testing import RedisServer

APP = "bench.servers.otelstream_app:app"
_GOAL = "Redis hub latency p99"


def _wait(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


def _line(stream: IO[bytes], timeout: float) -> str:
    """One line from the publisher (it writes one, then waits for us), within `timeout`."""
    ready, _, _ = select.select([stream], [], [], timeout)
    line = stream.readline() if ready else b""
    if not line:
        raise BenchError(f"the publisher process said nothing within {timeout:.0f} s")
    return line.decode().strip()


def _cross_process(running: Server, redis: RedisServer, spans: int, warm: int) -> list[int]:
    """Part 2's latency with the pipeline in a second process publishing to the same Redis."""
    counts = (warm, spans)
    command = [sys.executable, "-P", "-m", "bench.servers.publisher", redis.url, "2.0"]
    command += [str(count) for count in counts]
    env = {**os.environ, "PYTHONPATH": python_path()}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    latencies: list[int] = []
    try:
        for count in counts:
            run_id = _line(process.stdout, 30)
            # the previous stream's subscription is gone, so the count below is this one's
            _wait(lambda: running.stats()["subscribers"] == 0, 10, "the last stream to close")
            latencies = []
            client = Client(running.port, latency.stamped(latencies))
            try:
                client.open(f"/runs/{run_id}/events", last=2 * count + 2)
                _wait(lambda: running.stats()["subscribers"] >= 1, 10, "the subscription")
                process.stdin.write(b"go\n")
                process.stdin.flush()
                client.pump(client.all_closed, 60, "the second process's stream to end")
            finally:
                client.close()
            if len(latencies) != count:
                raise BenchError(f"second process: {len(latencies)} of {count} events arrived")
        process.stdin.close()
        if process.wait(timeout=20) != 0:
            raise BenchError(f"the publisher process exited with {process.returncode}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    return latencies


def _fanout(
    running: Server, redis: RedisServer | None, size: fanout.Size
) -> tuple[fanout.Result, float]:
    """Part 3's otelstream measurement, and redis-server's CPU seconds over the same time."""
    start_cpu = [0.0]

    def on_go() -> None:
        if redis is not None:
            start_cpu[0] = cpu_seconds(redis.pid)

    result = fanout.measure(running, size, on_go=on_go)
    redis_cpu = cpu_seconds(redis.pid) - start_cpu[0] if redis is not None else 0.0
    return result, redis_cpu


def _not_measured(why: str) -> Section:
    section = Section("5. Redis hub", [f"Not measured: {why}."])
    section.goals = [
        Goal(f"{_GOAL}, {where}", "< 5,000 µs", f"not measured: {why}", False)
        for where in ("pipeline in the uvicorn process", "pipeline in a second process")
    ]
    section.goals.append(Goal(heartbeat.GOAL, "within the spread", f"not measured: {why}", False))
    return section


def run(smoke: bool) -> Section:
    spans, warm = (50, 10) if smoke else (1_000, 100)
    size = fanout.sizes(smoke)["burst"]  # part 3's burst, once
    executable, why = find_redis()
    if executable is None:
        if smoke and os.environ.get("CI"):
            raise BenchError(f"part 5 needs Redis under CI: {why}")
        if smoke:
            return Section(
                "5. Redis hub", [f"Skipped: {why} (it fails the smoke run when CI is set)."]
            )
        return _not_measured(why)

    runs, per_run, events = size.runs, size.per_run, size.events
    with redis_server(executable) as redis:
        memory_env = {"OTELSTREAM_HUB": "memory"}
        redis_env = {"OTELSTREAM_HUB": redis.url}
        with servers(Server(APP, memory_env), Server(APP, redis_env)) as (in_memory, in_redis):
            latency.streams(in_memory, 1, warm, 2.0, 1)
            lat_memory = latency.streams(in_memory, 1, spans, 2.0, 2)
            latency.streams(in_redis, 1, warm, 2.0, 1)
            lat_redis = latency.streams(in_redis, 1, spans, 2.0, 2)
            lat_cross = _cross_process(in_redis, redis, spans, warm)
        # default settings: the hub's buffer (50,000 events) holds the burst
        with servers(Server(APP, memory_env), Server(APP, redis_env)) as (in_memory, in_redis):
            fan_memory, _ = _fanout(in_memory, None, size)
            fan_redis, redis_cpu = _fanout(in_redis, redis, size)
    beat_table, beat_notes, beat_goal, beat_summary = heartbeat.measure(executable, smoke)

    rows = []
    stats: dict[str, tuple[float, float, float]] = {}
    for name, values in (
        ("memory hub, pipeline in the uvicorn process", lat_memory),
        ("Redis hub, pipeline in the uvicorn process", lat_redis),
        ("Redis hub, pipeline in a second process", lat_cross),
    ):
        p50, p99, worst = (percentile(values, 0.5), percentile(values, 0.99), max(values))
        stats[name] = (p50, p99, worst)
        rows.append(
            [name, len(values), f"{p50 / 1e3:,.0f}", f"{p99 / 1e3:,.0f}", f"{worst / 1e3:,.0f}"]
        )
    latency_table = table(["hub", "events", "p50 µs", "p99 µs", "max µs"], rows)

    fan_rows = []
    for label, result, extra in (
        ("memory hub", fan_memory, None),
        ("Redis hub", fan_redis, redis_cpu),
    ):
        fan_rows.append(
            [
                label,
                f"{result.rate:,.0f}",
                f"{result.rate / fan_memory.rate:.3f}",
                f"{result.cpu_per_k:.4f}",
                "—" if extra is None else f"{extra / (runs * per_run * (events - 1)) * 1000:.4f}",
                f"{result.idle_kib:.1f}",
            ]
        )
    header = ["hub", "events/s delivered", "x memory hub", "uvicorn CPU s / 1,000 events"]
    fan_table = table(
        [*header, "redis-server CPU s / 1,000 events", "KiB / idle subscriber"], fan_rows
    )

    _, p99_redis, _ = stats["Redis hub, pipeline in the uvicorn process"]
    _, p99_cross, _ = stats["Redis hub, pipeline in a second process"]
    added = (
        stats["Redis hub, pipeline in the uvicorn process"][0]
        - stats["memory hub, pipeline in the uvicorn process"][0]
    )
    subscribers = runs * per_run
    section = Section(
        "5. Redis hub",
        [*latency_table, "", *fan_table, "", *beat_table],
        [
            "A `redis-server` (no persistence) on a free port of 127.0.0.1, started for this part "
            "and shut down after it; the uvicorn processes are part 2's and 3's app with "
            "`OTELSTREAM_HUB=memory` or `OTELSTREAM_HUB=redis://…`, started side by side and "
            "measured one at a time.",
            f"Latency: as part 2 at light load (one span every 2 ms, {spans:,} events counted "
            f"after a warm-up stream of {warm}, span end → bytes read by the client). In the "
            "first two rows the "
            "pipeline runs in the uvicorn process that serves the stream, so through Redis each "
            "event goes from the pipeline thread to the hub's I/O thread, is written by a Lua "
            "script, read back by the process's one blocking XREAD, and framed; in the third the "
            "pipeline is a second process (`bench.servers.publisher`) publishing into the same "
            "Redis, the uvicorn process only reading. "
            f"Redis adds {added / 1e3:,.0f} µs at p50.",
            f"Fan-out: as part 3's burst, once: {subscribers:,} subscribers, {per_run} on each of "
            f"{runs} runs of {events:,} events, every stream checked complete and in order; "
            "nothing was lost. The pipelines run in the "
            "uvicorn process that serves the streams. Through Redis each event is written once "
            "and read back once per process (one XREAD for every watched run), then fanned out "
            "in the process as by the memory hub, so the rate is bound by what Redis takes in. "
            "The spans come faster than that, and the hub's buffer (`redis_buffer_bytes`, "
            "64 MiB by default, about 37,000 events, past which events are counted as lost by "
            "design) holds the burst: every setting is the default. The redis-server column is "
            "that "
            "process's CPU (/proc) over the same time as the uvicorn column.",
            *beat_notes,
        ],
    )
    section.goals = [
        Goal(
            f"{_GOAL}, pipeline in the uvicorn process",
            "< 5,000 µs",
            f"{p99_redis / 1e3:,.0f} µs",
            p99_redis < 5_000_000,
        ),
        Goal(
            f"{_GOAL}, pipeline in a second process",
            "< 5,000 µs",
            f"{p99_cross / 1e3:,.0f} µs",
            p99_cross < 5_000_000,
        ),
        beat_goal,
    ]
    p50_redis = stats["Redis hub, pipeline in the uvicorn process"][0]
    section.summary = [
        f"through the Redis hub an event takes {p50_redis / 1e6:.1f} ms (p50; p99 "
        f"{p99_redis / 1e6:.1f} ms) and one worker delivers {fan_redis.rate:,.0f} events/s "
        f"({fan_redis.rate / fan_memory.rate:.2f}x the memory hub).",
        beat_summary,
    ]
    return section
