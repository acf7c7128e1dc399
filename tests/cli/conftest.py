"""What the command's tests share: the command on a pseudo-terminal, as a person runs it."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable

from tests.conftest import ROOT

RICH_OWN = re.compile(rb"\r?\x1b\[[0-9;?]*[A-Za-z]")
"""What rich itself writes on a terminal: colours (SGR), a CR then cursor moves, line erases."""


def screen(written: bytes) -> str:
    """What a terminal shows of `written`, near enough: rich's own sequences and CRs gone."""
    return RICH_OWN.sub(b"", written).decode().replace("\r\n", "\n")


def on_tty(
    *args: str,
    seconds: float = 30,
    columns: int = 120,
    on_output: Callable[[bytes], None] | None = None,
) -> tuple[int, bytes]:
    """The command on a pseudo-terminal (`columns` wide), as a person runs it; its exit
    status and every byte it wrote to the terminal. `on_output` is told all written so far
    after each read (a test opens its gate once the screen shows what it waits for)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR", "CI")}
    process = subprocess.Popen(
        [sys.executable, "-m", "otelstream", *args],
        cwd=ROOT,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**env, "TERM": "xterm-256color"},
    )
    os.close(follower)
    written = bytearray()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end closed
                break
            if not chunk:
                break
            written += chunk
            if on_output is not None:
                on_output(bytes(written))
        return process.wait(timeout=10), bytes(written)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
