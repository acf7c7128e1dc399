"""Part: what a log record costs with EventLogProcessor beside the Logs SDK's own cost.

One process, one LoggerProvider per configuration, rounds interleaved in a
shuffled order; each configuration's ratio is taken to the SDK's time of the
same round (median over rounds), so a noisy neighbour slows both sides alike.
Records are emitted through the Logs API (`Logger.emit`), in a span, as
`LoggingHandler` would; `progress()` is timed in a tight loop in a streamed task.

    python -m bench.logs          # the table alone
    python -m bench --only logs   # as a part of the report
"""

from __future__ import annotations

import logging
import random
import statistics
import sys
import time
from collections.abc import Callable

from opentelemetry._logs import SeverityNumber
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.trace import TracerProvider

from bench._common import Goal, Section, table
from otelstream import EventLogProcessor, EventStreamProcessor, MemoryHub, Settings, streamed_run

CONFIGS = {
    "sdk": "Logs SDK + a no-op LogRecordProcessor",
    "sdk-again": "the same again, a second provider: the noise floor",
    "noop2": "Logs SDK + two no-op processors: what any second processor costs the SDK",
    "outside": "+ EventLogProcessor, record outside a streamed run",
    "inside": "+ EventLogProcessor, record inside a streamed run (task_log published)",
    "logging-sdk": "stdlib `logger.info` through LoggingHandler, Logs SDK + a no-op processor",
    "logging-outside": "the same + EventLogProcessor, outside a streamed run",
}
GOAL_PERCENT = 2.0


class _NoOp(LogRecordProcessor):
    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _emitter(config: str, hub: MemoryHub) -> Callable[[], None]:
    provider = LoggerProvider()
    provider.add_log_record_processor(_NoOp())
    if config in ("outside", "inside", "logging-outside"):
        provider.add_log_record_processor(EventLogProcessor(hub))
    elif config == "noop2":
        provider.add_log_record_processor(_NoOp())
    logger = provider.get_logger("bench")
    if config.startswith("logging"):
        handler = LoggingHandler(logger_provider=provider)
        stdlib = logging.getLogger(f"bench.{config}")
        stdlib.addHandler(handler)
        stdlib.setLevel(logging.INFO)
        stdlib.propagate = False
        return lambda: stdlib.info("row %d read", 1)

    def emit() -> None:
        logger.emit(severity_number=SeverityNumber.INFO, body="row read", attributes={"n": 1})

    return emit


def measure(records: int, rounds: int) -> dict[str, list[float]]:
    """µs per record by configuration, one figure per round."""
    # no log budget: every record inside the run is published (the replay keeps the last 1,000)
    settings = Settings(
        replay_events=1_000, max_log_events_per_run=10**9, max_log_bytes_per_run=10**12
    )
    hub = MemoryHub(settings)
    tracing = TracerProvider()
    tracing.add_span_processor(EventStreamProcessor(hub, settings))
    tracer = tracing.get_tracer("bench")
    emitters = {config: _emitter(config, hub) for config in CONFIGS}
    timings: dict[str, list[float]] = {config: [] for config in CONFIGS}
    order = list(CONFIGS)
    for _ in range(rounds):
        random.shuffle(order)
        for config in order:
            emit = emitters[config]
            with tracer.start_as_current_span("job"):
                if config == "inside":
                    with streamed_run("bench", tracer_provider=tracing):
                        with tracer.start_as_current_span("task:read"):
                            timings[config].append(_time(emit, records))
                else:
                    timings[config].append(_time(emit, records))
    tracing.shutdown()
    return timings


def _time(emit: Callable[[], None], records: int) -> float:
    started = time.thread_time_ns()
    for _ in range(records):
        emit()
    return (time.thread_time_ns() - started) / records / 1000


def progress_cost(calls: int) -> float:
    """µs per `otelstream.progress` call in a tight loop inside a streamed task (coalesced)."""
    from otelstream import progress

    tracing = TracerProvider()
    hub = MemoryHub()
    tracing.add_span_processor(EventStreamProcessor(hub))
    tracer = tracing.get_tracer("bench")
    with streamed_run("bench", tracer_provider=tracing):
        with tracer.start_as_current_span("task:loop"):
            started = time.thread_time_ns()
            for i in range(calls):
                progress(i, calls)
            elapsed = time.thread_time_ns() - started
    tracing.shutdown()
    return elapsed / calls / 1000


def run(smoke: bool) -> Section:
    records, rounds = (500, 2) if smoke else (20_000, 31)
    timings = measure(records, rounds)

    def base(config: str) -> str:
        return "logging-sdk" if config.startswith("logging") else "sdk"

    ratios = {
        config: statistics.median(
            value / sdk for value, sdk in zip(timings[config], timings[base(config)], strict=True)
        )
        for config in CONFIGS
    }
    rows = [
        [label, f"{statistics.median(timings[config]):.2f}", f"{(ratios[config] - 1) * 100:+.1f}%"]
        for config, label in CONFIGS.items()
    ]
    per_call = progress_cost(2_000 if smoke else 200_000)
    rows.append(
        [
            "`otelstream.progress()` in a tight loop, streamed task (coalesced)",
            f"{per_call:.2f}",
            "",
        ]
    )
    outside = (ratios["outside"] - 1) * 100
    work = (ratios["outside"] - ratios["noop2"]) * 100  # beyond the SDK's call of a processor
    noise = abs(ratios["sdk-again"] - 1) * 100
    via_logging = (ratios["logging-outside"] - 1) * 100
    goal = Goal(
        "a log record outside a streamed run, added to the Logs SDK's cost",
        f"≤ {GOAL_PERCENT:.0f}%",
        f"{outside:+.1f}% in all, {work:+.1f}% beyond what a no-op processor costs "
        f"(noise floor {noise:.1f}%); through stdlib logging {via_logging:+.1f}%",
        outside <= GOAL_PERCENT,
    )
    return Section(
        title="Log records: EventLogProcessor beside the Logs SDK",
        table=table(["configuration", "µs/record (thread CPU)", "added"], rows),
        notes=[
            f"{records} records per configuration per round, {rounds} rounds interleaved; "
            "`added` is the median of each round's ratio to the SDK's time in that round (the "
            "stdlib rows: to the stdlib row with the SDK alone).",
        ],
        goals=[goal],
        summary=[
            f"A log record outside a streamed run costs {outside:+.1f}% over the Logs SDK's own "
            f"{statistics.median(timings['sdk']):.2f} µs; inside one, "
            f"{(ratios['inside'] - 1) * 100:+.0f}% (it is published as task_log); through stdlib "
            f"`logging` and `LoggingHandler`, {via_logging:+.1f}% outside a run."
        ],
    )


if __name__ == "__main__":
    section = run("--smoke" in sys.argv)
    print(section.markdown())
    for goal in section.goals:
        print(f"\ngoal: {goal.what}: {goal.target}, measured {goal.measured}, met: {goal.met}")
