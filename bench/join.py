"""Part 6: the stream core at scale (issue 12): joining a long run, a reconnect storm, what a
retained event costs, and shutting down with a client that stopped reading.

Each figure has a uvicorn process of its own (`bench.servers.otelstream_app`,
the documented set-up). A figure whose feature is not in this checkout is
skipped, with the reason printed and reported.
"""

from __future__ import annotations

import random
import signal
import socket
import statistics
import subprocess
import sys
import time

from bench._client import Client, request
from bench._common import (
    BenchError,
    Goal,
    Section,
    Server,
    percentile,
    rss_bytes,
    servers,
    spread,
    table,
)

APP = "bench.servers.otelstream_app:app"
_NEAR_END = 10  # a joining client has all but this many of the run's events


class Waves:
    """The runs of one server, each released by its own start signal."""

    def __init__(self, running: Server) -> None:
        self.running = running
        self.wave = 0

    def run(self, events: int) -> tuple[str, int]:
        """A finished fan-out run of `events` events, read whole once: (its events path, bytes
        of its events' SSE messages)."""
        self.wave += 1
        parameters = {"events": events, "interval_ms": 0.0, "wave": self.wave}
        body = {"pipeline_name": "fanout", "parameters": parameters}
        path = self.running.post("/runs", body).json()["events_url"]
        client = Client(self.running.port)
        try:
            stream = client.open(path, last=events)
            client.pump(client.all_heads, 30, "the run's stream")
            self.running.post("/bench/go")
            client.pump(client.all_closed, 120, f"a run of {events:,} events")
        finally:
            client.close()
        return path, stream.event_bytes


def _join_ms(running: Server, path: str, events: int, times: int) -> list[float]:
    """Opening the stream near the end of a finished run, one client after the other: connect
    to the stream's end, in ms."""
    headers = {"Last-Event-ID": str(events - _NEAR_END)}
    durations = []
    for _ in range(times):
        client = Client(running.port)
        try:
            stream = client.open(path, last=events, after=events - _NEAR_END, headers=headers)
            client.pump(client.all_closed, 30, "a joining stream")
        finally:
            client.close()
        if stream.events != _NEAR_END:
            raise BenchError(f"a joining stream read {stream.events} of {_NEAR_END} events")
        durations.append((time.monotonic_ns() - stream.opened_ns) / 1e6)
    return durations


def _join_and_storm(smoke: bool) -> tuple[dict[int, list[float]], list[float], float, int]:
    short, long, times = (20, 2_000, 5) if smoke else (20, 20_000, 60)
    storm = 50 if smoke else 1_000
    # the long run kept whole, so that any reconnect can resume
    with servers(Server(APP, {"OTELSTREAM_REPLAY_EVENTS": str(long)})) as (running,):
        waves = Waves(running)
        paths = {events: waves.run(events)[0] for events in (short, long)}
        joins = {events: [] for events in paths}  # type: dict[int, list[float]]
        for _ in range(3):  # alternating, so that neither run is always measured first
            for events, path in paths.items():
                joins[events] += _join_ms(running, path, events, times // 3)
        # the storm: every client resumes from where it was, somewhere near the end
        shuffle = random.Random(12)
        client = Client(running.port)
        running.post("/bench/lag")  # starts the probe
        time.sleep(0.2)
        running.post("/bench/lag")  # its samples so far are not the storm's
        started = time.monotonic()
        try:
            for _ in range(storm):
                after = long - shuffle.randrange(1, 200)
                headers = {"Last-Event-ID": str(after)}
                client.open(paths[long], last=long, after=after, headers=headers)
            client.pump(client.all_closed, 120, f"{storm} reconnecting streams to end")
        finally:
            client.close()
        seconds = time.monotonic() - started
        lag = running.post("/bench/lag").json()["lag_ms"]
        if any(s.status != 200 for s in client.streams):
            raise BenchError(f"storm: answers {sorted({s.status for s in client.streams})}")
    return joins, lag, seconds, storm


def _retained(smoke: bool) -> tuple[int, int, int]:
    """(runs, SSE bytes of their events, RSS growth) for finished runs kept by the hub."""
    runs, events = (5, 200) if smoke else (20, 2_000)
    with servers(Server(APP)) as (running,):
        waves = Waves(running)
        waves.run(events)  # first-use allocations are not the runs'
        time.sleep(0.2)
        before = rss_bytes(running.pid)
        sse = sum(waves.run(events)[1] for _ in range(runs))
        time.sleep(0.2)
        return runs * events, sse, rss_bytes(running.pid) - before


def _stalled_exit(smoke: bool) -> tuple[float, float]:
    """(grace seconds, SIGTERM to exit in s) with one client that stopped reading a stream."""
    grace = 1.0 if smoke else 3.0
    env = {"OTELSTREAM_SHUTDOWN_GRACE_SECONDS": str(grace), "OTELSTREAM_SEND_TIMEOUT_SECONDS": "5"}
    with servers(Server(APP, env)) as (running,):
        parameters = {"events": 10_000_000, "interval_ms": 0.0, "wave": 1}
        body = {"pipeline_name": "fanout", "parameters": parameters}
        path = running.post("/runs", body).json()["events_url"]
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once
        stalled.connect(("127.0.0.1", running.port))
        stalled.sendall(request(path))
        time.sleep(0.3)
        running.post("/bench/go")
        time.sleep(1.0 if smoke else 2.0)  # the run goes on; the stalled stream's buffers fill
        assert running.process is not None
        sent = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        try:
            running.process.wait(timeout=grace + 10 if smoke else 60)
            return grace, time.monotonic() - sent
        except subprocess.TimeoutExpired:  # measured, not broken: the goal says how far off
            print("   join: the server was still alive after SIGTERM", file=sys.stderr)
            return grace, float("inf")
        finally:
            stalled.close()


def run(smoke: bool) -> Section:
    notes: list[str] = []
    rows: list[list[object]] = []
    section = Section("6. The stream core at scale", [], notes)
    joins, lag, storm_s, storm = _join_and_storm(smoke)
    short, long = sorted(joins)
    ratio = statistics.median(joins[long]) / statistics.median(joins[short])
    for events, values in sorted(joins.items()):
        label = (
            f"open a stream {_NEAR_END} events before the end of a finished {events:,}-event run"
        )
        rows.append([label, f"{spread(values, '{:.2f}')} ms"])
    rows.append(
        [
            f"reconnect storm: {storm:,} clients with `Last-Event-ID` onto the {long:,}-event run",
            f"loop lag p99 {percentile(lag, 0.99):.1f} ms, max {max(lag):.1f} ms; "
            f"all served in {storm_s:.1f} s",
        ]
    )
    events, sse, grown = _retained(smoke)
    rows.append(
        [
            f"resident bytes of {events:,} retained events (finished runs, each read once)",
            f"{grown / events:,.0f} B/event, {sse / events:,.0f} B of SSE: {grown / sse:.2f}x",
        ]
    )
    grace, exit_s = _stalled_exit(smoke)
    rows.append(
        [
            f"SIGTERM to exit, {grace:g} s grace, a client that stopped reading",
            f"{exit_s:.1f} s" if exit_s < float("inf") else "still running: killed",
        ]
    )
    section.table = table(["figure", "measured"], rows)
    notes.append(
        f"Joining: median (min-max) of {len(joins[long])} stream openings, one after the other, "
        "from connecting to the stream's end (the run is over, so the stream ends after its "
        "last event). The storm: every client opens at once, each resuming from a random place "
        "in the run's last 200 events; the loop's lag is how late a 5 ms timer fires on the "
        "server's event loop meanwhile. Retained bytes: the server's RSS growth over runs "
        "that finished and were read whole, against the bytes of their events' SSE messages. "
        "Shutdown: the stalled client's receive buffer is 4 KiB and it never reads; the "
        "run keeps publishing until the grace period ends."
    )
    section.goals = [
        Goal(
            "join cost near the end of a 20,000-event run vs a 20-event run",
            "≤ 1.5x",
            f"{ratio:.2f}x",
            ratio <= 1.5,
        ),
        Goal(
            f"reconnect storm of {storm:,} clients: event-loop lag p99",
            "< 50 ms",
            f"{percentile(lag, 0.99):.1f} ms",
            percentile(lag, 0.99) < 50,
        ),
        Goal(
            "resident bytes of a finished run vs its events' SSE bytes",
            "≤ 1.5x",
            f"{grown / sse:.2f}x",
            grown / sse <= 1.5,
        ),
        Goal(
            "SIGTERM to exit with a stalled client",
            f"≤ grace + 5 s ({grace + 5:g} s)",
            f"{exit_s:.1f} s" if exit_s < float("inf") else "did not exit",
            exit_s <= grace + 5,
        ),
    ]
    section.summary = [
        f"opening a stream near the end of a {long:,}-event run costs {ratio:.2f}x what it costs "
        f"on a {short}-event run; {storm:,} clients reconnecting at once hold the event loop "
        f"{percentile(lag, 0.99):.0f} ms at p99; a retained event costs {grown / sse:.1f}x its "
        f"SSE bytes; with a client that stopped reading the server exits {exit_s:.1f} s after "
        f"SIGTERM ({grace:g} s grace)."
    ]
    print(f"   join: {ratio:.2f}x, storm lag p99 {percentile(lag, 0.99):.1f} ms", file=sys.stderr)
    return section
