"""A client that stops reading never holds the server: not while it runs, not at shutdown."""

from __future__ import annotations

import signal
import socket
import time

import httpx

from tests.conftest import app_subprocess

APP = "tests.apps.stalled_app:app"


def test_sigterm_with_a_stalled_client_exits_within_the_grace_period_and_a_few_seconds() -> None:
    env = {
        "OTELSTREAM_SHUTDOWN_GRACE_SECONDS": "1",
        "OTELSTREAM_ATTRIBUTE_ALLOWLIST": "blob",
        "OTELSTREAM_MAX_STRING_LENGTH": "100000",
    }
    with app_subprocess(APP, **env) as (url, process):
        started = httpx.post(f"{url}/runs", json={"pipeline_name": "flood"}, timeout=10)
        run_id = started.json()["run_id"]
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.sendall(f"GET /runs/{run_id}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert stalled.recv(4096).startswith(b"HTTP/1.1 200")  # then it reads no more
            time.sleep(1.5)  # its buffers fill: the server's writes to it now wait
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
            took = time.monotonic() - signalled
    assert code == -signal.SIGTERM
    assert took < 1 + 5, f"exited {took:.1f} s after SIGTERM with a 1 s grace period"
