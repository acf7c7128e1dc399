"""Part 9: thousands of subscribers of one run on one uvicorn worker (the documented set-up).

One run, `N` streams on it (1,000, 5,000, 10,000), each a raw socket of the
harness. Measured, from the server's side of each step: the time for all `N` to
attach (every stream's first event read and the server counting `N` subscribers),
for one event to reach all of them, for the run's end to reach all of them (every
stream closed), and the server's RSS growth per subscriber. The open-files limit is
raised here for the harness and the server (which inherits it).
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from typing import Any

from bench._client import Client, Stream
from bench._common import BenchError, Goal, Section, Server, rss_bytes, servers, spread, table
from bench.fanout import APP

_WARM = 10  # streams attached before the memory baseline: first-use costs are not theirs


def _open_files(count: int) -> None:
    """Room for `count` sockets here and as many in the server, which inherits the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 1_024
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            raise BenchError(f"the open-files limit is {hard}: {count:,} streams need {wanted:,}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def measure(count: int) -> dict[str, float]:
    """One fresh server, one run, `count` streams: seconds for each step, KiB per stream."""
    env = {"OTELSTREAM_MAX_STREAMS": str(count + 100)}
    with servers(Server(APP, env)) as (running,):
        body = {"pipeline_name": "scale", "parameters": {"wave": 1}}
        path = running.post("/runs", body).json()["events_url"]
        reached: dict[int, int] = {}  # seq -> streams that have it

        def on_event(stream: Stream, event: dict[str, Any], now: int) -> None:
            reached[event["seq"]] = reached.get(event["seq"], 0) + 1

        client = Client(running.port, on_event)
        try:

            def attached(wanted: int) -> bool:
                if reached.get(1, 0) < wanted:
                    return False
                return running.stats()["subscribers"] >= wanted

            for _ in range(_WARM):
                client.open(path, last=4)
            client.pump(lambda: attached(_WARM), 60, f"{_WARM} streams")
            time.sleep(0.3)
            baseline = rss_bytes(running.pid)
            start = time.monotonic()
            for number in range(_WARM, count):
                client.open(path, last=4)
                if number % 200 == 0:  # read what came meanwhile: the server never waits on us
                    client.poll()
            client.pump(lambda: attached(count), 300, f"{count:,} streams")
            attach = time.monotonic() - start
            time.sleep(0.5)
            kib = (rss_bytes(running.pid) - baseline) / (count - _WARM) / 1024
            start = time.monotonic()
            running.post("/bench/go")  # one task: its start (seq 2) and end (seq 3)
            client.pump(lambda: reached.get(2, 0) >= count, 120, "one event to reach all")
            event = time.monotonic() - start
            client.pump(lambda: reached.get(3, 0) >= count, 120, "the next event")
            start = time.monotonic()
            running.post("/bench/go")  # the run's end (seq 4): every stream closes
            client.pump(client.all_closed, 300, "the run's end to reach all")
            end = time.monotonic() - start
            if any(s.notices or s.status != 200 or s.events != 4 for s in client.streams):
                raise BenchError("a stream was cut or missed an event")
        finally:
            client.close()
    return {"attach": attach, "event": event, "end": end, "kib": kib}


def run(smoke: bool) -> Section:
    counts, reps = ([100], 1) if smoke else ([1_000, 5_000, 10_000], 3)
    _open_files(max(counts))
    results: dict[int, list[dict[str, float]]] = {}
    for rep in range(reps):
        for count in counts if rep % 2 == 0 else reversed(counts):
            started = time.monotonic()
            results.setdefault(count, []).append(measure(count))
            seconds = time.monotonic() - started
            print(f"   scale {count} #{rep + 1}: {seconds:.0f} s", file=sys.stderr)
    return _section(results)


def _section(results: dict[int, list[dict[str, float]]]) -> Section:
    def cell(count: int, key: str, scale: float = 1000, form: str = "{:,.0f}") -> str:
        return spread([r[key] * scale for r in results[count]], form)

    rows = [
        [
            f"{count:,}",
            cell(count, "attach"),
            cell(count, "event"),
            cell(count, "end"),
            cell(count, "kib", 1, "{:.1f}"),
        ]
        for count in results
    ]
    header = ["subscribers of one run", "all attached, ms", "one event to all, ms"]
    header += ["the run's end to all, ms", "KiB / subscriber"]
    top = max(results)
    section = Section(
        "9. Many subscribers of one run",
        table(header, rows),
        [
            "One uvicorn worker in the documented set-up (`untraced_streams`), one run, every "
            "stream a raw socket of the harness (one process, one `selectors` loop). *All "
            "attached*: from the first of them opening to every stream having read the run's "
            "first event and the server counting them all; *one event*: from the start signal "
            "to every stream having read the task's start; *the run's end*: from the signal to "
            "every stream closed by the server after `pipeline_completed`. Memory: RSS growth "
            f"from {_WARM} streams to all of them, per stream. Median (min-max), each in a fresh "
            "server process.",
        ],
    )
    worst = {key: max(r[key] for r in results[top]) for key in ("attach", "event", "end", "kib")}
    if top >= 10_000:
        section.goals += [
            Goal("10,000 subscribers of one run: all attached", "≤ 2 s",
                 f"{worst['attach']:.2f} s worst", worst["attach"] <= 2),
            Goal("10,000 subscribers: one event reaches all", "≤ 100 ms",
                 f"{worst['event'] * 1000:.0f} ms worst", worst["event"] <= 0.1),
            Goal("10,000 subscribers: the run's end reaches all", "≤ 1 s",
                 f"{worst['end']:.2f} s worst", worst["end"] <= 1),
            Goal("10,000 subscribers: memory per idle subscriber", "≤ 25 KiB",
                 f"{worst['kib']:.1f} KiB worst", worst["kib"] <= 25),
        ]  # fmt: skip
    median = {key: statistics.median(r[key] for r in results[top]) for key in worst}
    section.summary = [
        f"{top:,} subscribers of one run on one worker: all attached in {median['attach']:.1f} s, "
        f"one event reaches all in {median['event'] * 1000:.0f} ms, the run's end in "
        f"{median['end'] * 1000:.0f} ms; {median['kib']:.1f} KiB per idle subscriber."
    ]
    return section
