"""`otelstream runs`: recent and running runs as a table laid out to the terminal's width.

On a terminal every column but two is as wide as its widest value (the run id whole, to paste
into `tail`; the status; when; how long), the name is cut only when it must share what is left
with the error, and the error column takes whatever remains. Piped or with `--wide`, nothing is
cut. The status words are those the table and the page show (`done`, `failed`), and `--status`
takes them as well as the API's (`success`, `error`).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.text import Text

from otelstream.cli._format import STATUS_STYLE, STATUS_TEXT, format_elapsed, format_ms, parse_time
from otelstream.client import Client, RunsPage
from otelstream.events._inert import inert

COLUMNS = ("run", "name", "status", "started", "took", "error")
GAP = "  "
STATUSES = {"running": "running", "cancelled": "cancelled", "success": "success", "error": "error"}
STATUSES.update({"done": "success", "failed": "error", "running…": "running"})
"""What `--status` takes: the words the table shows, and the API's."""
SHOWN_NAME = 12
"""On a narrow terminal the name keeps at least this many characters (or its whole)."""


def status_word(text: str) -> str:
    """`--status`'s type: `done` means `success`, `failed` means `error`, as the table says."""
    try:
        return STATUSES[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a status: running, done, failed or cancelled"
        ) from None


def list_runs(args: argparse.Namespace, console: Console) -> int:
    with Client(args.url) as client:
        page = client.runs(
            pipeline=args.pipeline, status=args.status, limit=args.limit, cursor=args.cursor
        )
    print_runs(page, console, wide=args.wide or not console.is_terminal)
    return 0


def print_runs(page: RunsPage, console: Console, *, wide: bool, now: float | None = None) -> None:
    now = time.time() if now is None else now
    rows = [_row(run, now, short=not wide) for run in page]
    if not rows:
        console.print(Text("no runs", style="dim"))
    else:
        widths = _widths(rows, None if wide else console.width)
        fit = {"soft_wrap": True} if wide else {"no_wrap": True, "overflow": "ellipsis"}
        console.print(_line(list(COLUMNS), widths, header=True), **fit)
        for row, run in zip(rows, page, strict=True):
            line = _line(row, widths, status=str(run.get("status")))
            console.print(line, **fit)
    if page.next_cursor:
        more = f"more: --cursor {inert(page.next_cursor)}"
        console.print(Text(more, style="dim"), soft_wrap=True)


def _widths(rows: list[list[str]], width: int | None) -> list[int]:
    """Each column as wide as its widest cell; within `width`, the name and the error share
    what the others leave (the name keeps `SHOWN_NAME` characters, the error the rest)."""
    widths = [max(len(cell) for cell in column) for column in zip(COLUMNS, *rows, strict=True)]
    if width is None:
        return widths
    room = width - len(GAP) * (len(COLUMNS) - 1) - sum(widths[i] for i in (0, 2, 3, 4))
    name, error = widths[1], widths[5]
    if name + error > room:
        name = max(min(name, SHOWN_NAME), room - error)
        error = max(room - name, len(COLUMNS[5]))
    return [widths[0], name, widths[2], widths[3], widths[4], error]


def _line(cells: list[str], widths: list[int], *, header: bool = False, status: str = "") -> Text:
    line = Text(style="bold" if header else "")
    last = len(cells) - 1
    for i, (cell, width) in enumerate(zip(cells, widths, strict=True)):
        shown = cell if len(cell) <= width else cell[: max(0, width - 1)] + "…"
        style = ""
        if not header and i == 2:
            style = STATUS_STYLE.get(status, "")
        elif not header and i == 5:
            style = "red"
        line.append(shown if i == last else shown.ljust(width), style=style)
        if i != last:
            line.append(GAP)
    line.rstrip()
    return line


def _row(run: dict[str, Any], now: float, *, short: bool) -> list[str]:
    """A run's cells as text: a running run's age for its duration, every value inert."""
    status = str(run.get("status"))
    took = format_ms(run.get("duration_ms"))
    started = parse_time(run.get("started_at"))
    if status == "running" and started is not None:
        took = format_elapsed(now - started)
    return [
        inert(run.get("run_id", "")),
        inert(run.get("name", "")),
        STATUS_TEXT.get(status, inert(status)),
        _when(run.get("started_at"), started, now) if short else inert(run.get("started_at", "")),
        took,
        _problems(run, status),
    ]


def _when(text: Any, started: float | None, now: float) -> str:
    """`16:45:57` today (UTC, as the server's times are), `12-04 16:45` another day."""
    if started is None:
        return inert(text or "")
    at = datetime.fromtimestamp(started, UTC)
    if at.date() == datetime.fromtimestamp(now, UTC).date():
        return at.strftime("%H:%M:%S")
    return at.strftime("%m-%d %H:%M")


def _problems(run: dict[str, Any], status: str) -> str:
    """The error column: the run's error type, and how many ERROR log records it had."""
    failed = "" if status == "cancelled" else inert(run.get("error_type") or "")
    logged = run.get("errors_logged")
    if not isinstance(logged, int) or logged <= 0:
        return failed
    count = f"{logged} ERROR log{'s' if logged > 1 else ''}"
    return f"{failed}, {count}" if failed else count


__all__ = ["COLUMNS", "STATUSES", "list_runs", "print_runs", "status_word"]
