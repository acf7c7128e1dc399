"""Part: the OTLP receiver: spans of another service into streamed runs, on one worker.

- *ingest*: batches of 512 spans (protobuf, as the SDKs' exporters send them) posted one after
  another to `POST /v1/traces` of a fresh server, spread over 10 runs with 10 SSE subscribers
  each (in a reader process of their own, every event checked to the run's last id): spans/s
  while the batches are taken (the server answers a batch once its spans are in the hub), and
  the time until every subscriber has every event;
- *latency*: one span per request, one every 2 ms, to a run with one subscriber (this process):
  from the request's start to the `recv` that brings the span's `task_started`, p50 and p99;
- *CPU per span*: the server's CPU (from /proc) per span taken, with no subscriber, beside what
  a span costs the process that makes it locally (the SDK and `EventStreamProcessor` in a
  streamed run, no subscriber either), measured in this process.

    python -m bench.ingest [--smoke]     # the table alone
    python -m bench --only ingest        # as a part of the report
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from bench._client import Client, Stream
from bench._common import (
    BenchError,
    Goal,
    Section,
    Server,
    cpu_seconds,
    percentile,
    python_path,
    servers,
    spread,
    table,
)

APP = "bench.servers.ingest_app:app"
BATCH = 512
RUNS, SUBSCRIBERS = 10, 10
PROTOBUF = {"content-type": "application/x-protobuf"}
GOAL_SPANS_S, GOAL_P50_MS = 30_000, 2.0
_RESOURCE = {"attributes": [KeyValue(key="service.name", value=AnyValue(string_value="bench"))]}


def batch(run_id: str, root: str, first: int, count: int) -> bytes:
    """`count` spans of the run, children of its root, ids from `first` (encoded once, ahead)."""
    trace_id, parent = bytes.fromhex(run_id), bytes.fromhex(root)
    now = time.time_ns()
    spans = [
        Span(
            trace_id=trace_id,
            span_id=(first + i).to_bytes(8, "big"),
            parent_span_id=parent,
            name=f"GET /items/{i % 8}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=now + i,
            end_time_unix_nano=now + i + 1_000_000,
        )
        for i in range(count)
    ]
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=_RESOURCE, scope_spans=[ScopeSpans(spans=spans)])]
    )
    return request.SerializeToString()


def _post_all(server: Server, bodies: list[bytes]) -> float:
    """Posts every body in turn (keep-alive), each answered in full; returns the seconds."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        started = time.perf_counter()
        for body in bodies:
            answer = client.post("/v1/traces", content=body, headers=PROTOBUF)
            if answer.status_code != 200:
                raise BenchError(f"the receiver answered {answer.status_code}: {answer.text}")
            if ExportTraceServiceResponse.FromString(answer.content).partial_success.rejected_spans:
                raise BenchError("the receiver refused spans of a streamed run")
        return time.perf_counter() - started


def ingest_once(batches_per_run: int) -> tuple[float, float, float, float]:
    """(spans/s taken, seconds until every subscriber had everything, server CPU µs per span,
    the reader process's CPU seconds)"""
    with servers(APP) as (server,):
        runs = server.post("/bench/runs", {"count": RUNS}).json()["runs"]
        bodies = [
            batch(run["run_id"], run["root"], 1 + b * BATCH, BATCH)
            for b in range(batches_per_run)
            for run in runs
        ]
        last = 1 + 2 * BATCH * batches_per_run + 1  # started, every span twice, completed
        paths = [f"/runs/{run['run_id']}/events" for run in runs for _ in range(SUBSCRIBERS)]
        reader = subprocess.Popen(
            [sys.executable, "-P", "-m", "bench.ingest", "--read", str(server.port), str(last)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": python_path()},
        )
        assert reader.stdin is not None
        reader.stdin.write("\n".join(paths) + "\n")
        reader.stdin.close()
        reader.stdin = None  # written: communicate() below only reads
        deadline = time.monotonic() + 60
        while server.stats()["subscribers"] < len(paths):
            if time.monotonic() > deadline or reader.poll() is not None:
                raise BenchError("the subscribers did not connect")
            time.sleep(0.05)
        cpu = cpu_seconds(server.pid)
        started = time.perf_counter()
        seconds = _post_all(server, bodies)
        server.post("/bench/end")
        output, _ = reader.communicate(timeout=300)
        drained = time.perf_counter() - started
        cpu = cpu_seconds(server.pid) - cpu
        *counts, reader_cpu = output.split()
        if reader.returncode != 0 or counts != [str(last)] * len(paths):
            raise BenchError(f"a subscriber did not get every event: {output[:200]}")
    spans = len(bodies) * BATCH
    return spans / seconds, drained, cpu / spans * 1e6, float(reader_cpu)


def read(port: int, last: int) -> int:
    """The reader process: every stream named on stdin to its end, checked; prints the events."""
    client = Client(port)
    streams = [client.open(line.strip(), last=last) for line in sys.stdin if line.strip()]
    try:
        client.pump(client.all_closed, 300, "the streams' ends")
    finally:
        client.close()
    for stream in streams:
        print(stream.events)
    print(time.process_time())  # its CPU: it parses and checks every event of every stream
    return 0


def receiver_cpu(batches: int) -> float:
    """Server CPU µs per span taken, no subscriber."""
    with servers(APP) as (server,):
        (run,) = server.post("/bench/runs", {"count": 1}).json()["runs"]
        bodies = [batch(run["run_id"], run["root"], 1 + b * BATCH, BATCH) for b in range(batches)]
        cpu = cpu_seconds(server.pid)
        _post_all(server, bodies)
        return (cpu_seconds(server.pid) - cpu) / (batches * BATCH) * 1e6


def local_cpu(spans: int) -> float:
    """Thread CPU µs per span made locally in a streamed run: the SDK and the processor."""
    from opentelemetry.sdk.trace import TracerProvider

    from otelstream import EventStreamProcessor, MemoryHub, Settings, streamed_run

    hub = MemoryHub(Settings(replay_events=1_000_000, max_open_spans=1_000_000))
    provider = TracerProvider()
    provider.add_span_processor(EventStreamProcessor(hub))
    tracer = provider.get_tracer("bench")
    with streamed_run("bench", tracer_provider=provider):
        started = time.thread_time_ns()
        for i in range(spans):
            with tracer.start_as_current_span(f"GET /items/{i % 8}"):
                pass
        elapsed = time.thread_time_ns() - started
    provider.shutdown()
    return elapsed / spans / 1000


def latency_once(count: int) -> list[float]:
    """ms from a one-span request's start to the recv of its task_started, `count` times."""
    with servers(APP) as (server,):
        (run,) = server.post("/bench/runs", {"count": 1}).json()["runs"]
        arrived: dict[int, int] = {}

        def on_event(stream: Stream, event: dict[str, Any], now: int) -> None:
            if event["type"] == "task_started":
                arrived[int(event["span_id"], 16)] = now

        client = Client(server.port, on_event)
        client.open(f"/runs/{run['run_id']}/events")
        client.pump(lambda: bool(client.streams[0].events), 10, "the run's start")
        latencies = []
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for i in range(1, count + 1):
                body = batch(run["run_id"], run["root"], i, 1)
                sent = time.monotonic_ns()
                http.post("/v1/traces", content=body, headers=PROTOBUF).raise_for_status()
                client.pump(lambda i=i: i in arrived, 10, "a span's event")  # type: ignore[misc]
                latencies.append((arrived[i] - sent) / 1e6)
                time.sleep(0.002)
        client.close()
        return latencies


def run(smoke: bool) -> Section:
    reps, batches_per_run, latency_spans = (1, 2, 50) if smoke else (3, 10, 1_000)
    rates, drains, cpus, readers, p50s, p99s = [], [], [], [], [], []
    receiver, local = [], []
    for _ in range(reps):
        rate, drained, cpu, reader_cpu = ingest_once(batches_per_run)
        rates.append(rate)
        drains.append(drained)
        readers.append(reader_cpu)
        cpus.append(cpu)
        latencies = latency_once(latency_spans)
        p50s.append(percentile(latencies, 0.5))
        p99s.append(percentile(latencies, 0.99))
        receiver.append(receiver_cpu(batches_per_run * 2))
        local.append(local_cpu(20_000 if not smoke else 2_000))
    spans = RUNS * batches_per_run * BATCH
    ratio = statistics.median(r / c for r, c in zip(receiver, local, strict=True))
    rows = [
        [
            f"spans/s taken ({spans:,} spans, {RUNS} runs, {SUBSCRIBERS} subscribers each)",
            spread(rates),
        ],
        ["seconds until every subscriber had every event", spread(drains, "{:.2f}")],
        [
            "the reader process's CPU seconds meanwhile (it parses and checks every event)",
            spread(readers, "{:.2f}"),
        ],
        ["server CPU µs per span, with the 100 subscribers", spread(cpus, "{:.1f}")],
        ["arrival → subscriber p50, ms (one span a request)", spread(p50s, "{:.2f}")],
        ["arrival → subscriber p99, ms", spread(p99s, "{:.2f}")],
        ["receiver CPU µs per span, no subscriber", spread(receiver, "{:.1f}")],
        ["local span CPU µs (SDK + EventStreamProcessor), no subscriber", spread(local, "{:.1f}")],
        ["receiver / local", f"{ratio:.1f} times"],
    ]
    goals = [
        Goal(
            "OTLP ingest into streamed runs, one worker (batches of 512, 10 subscribers a run)",
            f"≥ {GOAL_SPANS_S:,} spans/s",
            spread(rates),
            min(rates) >= GOAL_SPANS_S,
        ),
        Goal(
            "a span's arrival to its bytes at a subscriber, p50",
            f"≤ {GOAL_P50_MS} ms",
            spread(p50s, "{:.2f}"),
            max(p50s) <= GOAL_P50_MS,
        ),
    ]
    return Section(
        title="OTLP ingest: spans of other services into streamed runs",
        table=table(["figure", "median (min to max)"], rows),
        notes=[
            f"{reps} fresh servers; *spans/s taken* is the spans over the time from the first "
            "request to the last answer (each answered once its spans are in the hub), the "
            "subscribers reading meanwhile; every subscriber then reads to the run's last id. The "
            "100 subscribers are one Python process of the harness that parses and checks each "
            "of their events: *seconds until every subscriber had every event* is bound by it "
            "(its CPU seconds beside, its start-up included), not by the server.",
        ],
        goals=goals,
        summary=[
            f"The OTLP receiver takes {statistics.median(rates):,.0f} spans/s into streamed runs "
            f"on one worker (batches of 512, 10 subscribers a run); a span reaches a subscriber "
            f"{statistics.median(p50s):.2f} ms (p50) after its request starts; it costs the "
            f"receiver {ratio:.1f} times what a span made locally costs its process."
        ],
    )


if __name__ == "__main__":
    if "--read" in sys.argv:
        index = sys.argv.index("--read")
        sys.exit(read(int(sys.argv[index + 1]), int(sys.argv[index + 2])))
    section = run("--smoke" in sys.argv)
    print(section.markdown())
    for goal in section.goals:
        print(f"\ngoal: {goal.what}: {goal.target}, measured {goal.measured}, met: {goal.met}")
