"""`python -m bench [--smoke] [--only PART ...]`: every benchmark, one markdown report.

The full run writes bench/RESULTS.md and the block of the docs' performance page between
`<!-- bench:begin -->` and `<!-- bench:end -->`, both from the same figures and
stamped with the commit, so the two always agree and neither is edited by hand.
`--smoke` runs every part at tiny sizes, writes nothing, and exits non-zero when
anything is broken (a lost event, a server that did not start) — the goals are
not judged at those sizes. `--only` runs some parts and writes nothing either.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import resource
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import fanout, ingest, join, latency, logs, memory, redis_hub, scale, spans
from bench._common import ROOT, Goal, Section, table

PARTS: dict[str, Callable[[bool], Section]] = {
    "spans": spans.run,
    "latency": latency.run,
    "fanout": fanout.run,
    "memory": memory.run,
    "join": join.run,
    "redis": redis_hub.run,
    "logs": logs.run,
    "ingest": ingest.run,
    "scale": scale.run,
}

PACKAGES = [
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
    "redis",
]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _commit() -> str:
    """HEAD, and whether the tree differs from it (what was measured is then not HEAD)."""
    head = _git("rev-parse", "HEAD") or "unknown (not a git checkout)"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return f"{head}{' with uncommitted changes' if dirty else ''}"


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


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
    load = os.getloadavg()
    rows: list[list[object]] = [
        ["CPUs (nproc)", os.cpu_count()],
        ["CPU model", cpu],
        ["memory", f"{memory_kib / 1024 / 1024:.1f} GiB"],
        ["load average at the end (1, 5, 15 min)", ", ".join(f"{x:.2f}" for x in load)],
        ["OS", f"{platform.system()} {platform.release()}"],
        ["Python", f"{platform.python_implementation()} {platform.python_version()}"],
    ]
    rows += [[name, _version(name)] for name in PACKAGES]
    return table(["", "version or value"], rows)


def _goals(goals: list[Goal]) -> Section:
    rows = [[g.what, g.target, g.measured, "met" if g.met else "**not met**"] for g in goals]
    return Section("Goals", table(["goal", "target", "measured", ""], rows))


def _readme_block(sections: list[Section], stamp: str) -> str:
    lines = [BEGIN, f"Measured by `uv run python -m bench` {stamp}:", ""]
    lines += [f"- {sentence}" for section in sections for sentence in section.summary]
    lines += [
        "",
        "Every figure, its spread and the goals: [`bench/RESULTS.md`](bench/RESULTS.md).",
        END,
    ]
    return "\n".join(lines)


def _write(sections: list[Section], report: str, elapsed: float) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = _commit()
    head = [
        "# otelstream benchmarks",
        "",
        f"Written by `uv run python -m bench` on {when}, in {elapsed / 60:.1f} minutes, at commit "
        f"`{commit}`; never edited by hand. Every ratio compares figures taken in this same run.",
        "",
        "## Machine",
        "",
        *_machine(),
    ]
    results = Path(__file__).with_name("RESULTS.md")
    results.write_text("\n".join(head) + "\n\n" + report + "\n")
    readme = ROOT / "docs" / "operating" / "performance.md"
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{readme.name} has no {BEGIN} … {END} block to write the figures into")
    stamp = f"on {when} at commit `{commit[:12]}`{commit[40:]} ({os.cpu_count()} CPUs)"
    block = _readme_block(sections, stamp)
    readme.write_text(pattern.sub(lambda _: block, text))
    print(
        f"\nwrote {results.name} and the performance page's figures ({elapsed:.0f} s)",
        file=sys.stderr,
    )


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
        _write(sections, report, elapsed)
    else:
        print(f"\nall parts ran ({elapsed:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
