"""`python -m bench [--smoke] [--only PART ...]`: every benchmark, one markdown report.

The full run writes bench/RESULTS.md; `--smoke` runs every part at tiny sizes
in seconds, writes nothing, and exits non-zero when anything is broken (a lost
event, a server that did not start) — the goals are not judged at those sizes.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import resource
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import fanout, latency, memory, redis_hub, spans
from bench._common import Goal, Section, table

PARTS: dict[str, Callable[[bool], Section]] = {
    "spans": spans.run,
    "latency": latency.run,
    "fanout": fanout.run,
    "memory": memory.run,
    "redis": redis_hub.run,
}

PEERS = [
    "otelstream",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "fastapi",
    "starlette",
    "sse-starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "anyio",
    "pydantic",
]


def _machine() -> list[str]:
    """What the figures were measured on: no paths, no host names."""
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    rows: list[list[object]] = [
        ["CPUs (nproc)", os.cpu_count()],
        ["CPU model", cpu],
        ["memory", f"{memory_kib / 1024 / 1024:.1f} GiB"],
        ["OS", f"{platform.system()} {platform.release()}"],
        ["Python", f"{platform.python_implementation()} {platform.python_version()}"],
    ]
    rows += [[name, importlib.metadata.version(name)] for name in PEERS]
    return table(["", "version or value"], rows)


def _goals(goals: list[Goal]) -> Section:
    rows = [[g.what, g.target, g.measured, "met" if g.met else "**not met**"] for g in goals]
    return Section("Goals", table(["goal", "target", "measured", ""], rows))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--only", nargs="+", choices=list(PARTS), help="run only these parts")
    options = parser.parse_args()
    # 1,000 client sockets here and as many in the server (which inherits the limit)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))

    started = time.monotonic()
    sections: list[Section] = []
    failed: list[str] = []
    for name in options.only or list(PARTS):
        print(f"-- {name} ...", file=sys.stderr, flush=True)
        part_start = time.monotonic()
        try:
            sections.append(PARTS[name](options.smoke))
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"   {name}: {time.monotonic() - part_start:.1f} s", file=sys.stderr, flush=True)
    goals = [goal for section in sections for goal in section.goals]
    report = "\n\n".join(section.markdown() for section in [_goals(goals), *sections])
    print(report)
    elapsed = time.monotonic() - started
    if failed:
        print(f"\nBROKEN: {', '.join(failed)}", file=sys.stderr)
        return 1
    if not options.smoke and not options.only:
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        head = [
            "# otelstream benchmarks",
            "",
            f"Measured by `uv run python -m bench` on {when}, in {elapsed / 60:.1f} minutes. "
            "Every ratio compares figures taken side by side in this same run.",
            "",
            "## Machine",
            "",
            *_machine(),
        ]
        path = Path(__file__).with_name("RESULTS.md")
        path.write_text("\n".join(head) + "\n\n" + report + "\n")
        print(f"\nwrote {path.name} ({elapsed:.0f} s)", file=sys.stderr)
    else:
        print(f"\nall parts ran ({elapsed:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
