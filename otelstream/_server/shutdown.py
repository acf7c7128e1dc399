"""Graceful shutdown: on SIGTERM, runs get a grace period, then open streams are told and closed.

uvicorn, on SIGTERM, stops accepting connections and waits for the open ones to
end; an event stream ends only with its run. So the router chains a handler in
front of the server's own (installed at lifespan start-up, where uvicorn's is
already in place; uvicorn restores the originals on exit): new runs are refused
at once, running ones have `shutdown_grace_seconds` to finish and stream to the
end, and then every stream still open ends with a `server_shutdown` message and
the runs left are cancelled (in this order, so that a stream's end does not depend
on how soon a cancelled run reaches its next span), so the server can exit.

Only the first signal goes on to uvicorn. A terminal's Ctrl-C reaches every process
of its group, and `uv run` (so `scripts/serve`) forwards it too: uvicorn would see
two, take the second for "force quit", and skip both this path and the app's
shutdown (streams cut without a word, runs left going, a process held by their
threads). So a signal within a second of the first is dropped as its echo, and a
later one ends the grace period at once; uvicorn still closes the connections and
runs the app's shutdown. Pipeline threads are daemons
(`_daemon_pool`), so one blocked where cancellation cannot reach it does not hold
the process after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from otelstream._server.sse import LAST_WORDS_SECONDS, OpenStreams
from otelstream.runs import PipelineRunner

logger = logging.getLogger("otelstream._server.shutdown")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_POLL_S = 0.05
_ECHO_S = 1.0
"""A signal this soon after the first is its echo (the terminal's Ctrl-C, forwarded by uv)."""


class GracefulShutdown:
    def __init__(self, runner: PipelineRunner, streams: OpenStreams, grace_seconds: float) -> None:
        self.runner = runner
        self.streams = streams
        self.grace_seconds = grace_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Any] = {}
        self._deadline: float | None = None
        self._signalled: float | None = None  # when the first signal came

    def install(self) -> None:
        """Chain our handler before the current SIGTERM/SIGINT ones (main thread only)."""
        self._loop = asyncio.get_running_loop()
        self._signalled = None  # a lifespan that starts again starts afresh
        if threading.current_thread() is not threading.main_thread():
            return  # signals go to the main thread; an app served elsewhere calls begin()
        for sig in _SIGNALS:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                if signal.getsignal(sig) == self._handle:
                    signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        loop = self._loop if self._loop is not None and not self._loop.is_closed() else None
        now = time.monotonic()
        if self._signalled is not None:
            # not to uvicorn: a second SIGINT there skips the app's shutdown
            if now - self._signalled > _ECHO_S and loop is not None:
                loop.call_soon_threadsafe(self.hurry)
            return
        self._signalled = now
        if loop is not None:
            loop.call_soon_threadsafe(self.begin)
        previous = self._previous.get(signum)
        self._bound_server_wait(previous)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL and signum == signal.SIGINT:
            raise KeyboardInterrupt

    def _bound_server_wait(self, handler: object) -> None:
        """Bound how long uvicorn waits for connections, if the app did not: a client that
        stopped reading keeps its connection open for ever (its socket buffer never drains),
        and uvicorn would wait for it. Past the grace period and the streams' last words,
        uvicorn then cancels what is left and still runs the app's lifespan shutdown."""
        config = getattr(getattr(handler, "__self__", None), "config", None)
        if config is not None and getattr(config, "timeout_graceful_shutdown", 0) is None:
            config.timeout_graceful_shutdown = self.grace_seconds + LAST_WORDS_SECONDS + 1

    def begin(self) -> None:
        """On the loop: refuse new runs, then end the rest within the grace period."""
        if self._deadline is not None:
            return
        running = self.runner.running
        if running:
            logger.info(
                "otelstream: shutting down; %d run(s) have %.1f s to finish",
                running,
                self.grace_seconds,
            )
        else:
            logger.info("otelstream: shutting down; no run is running")
        self.runner.close()
        self._deadline = time.monotonic() + self.grace_seconds
        self._check()

    def hurry(self) -> None:
        """On the loop, at a second signal: end the grace period now."""
        self.begin()
        assert self._deadline is not None
        if self._deadline > time.monotonic():
            logger.info("otelstream: signalled again; cancelling runs and closing streams now")
            self._deadline = time.monotonic()

    def _check(self) -> None:
        assert self._deadline is not None and self._loop is not None
        if self.runner.running and time.monotonic() < self._deadline:
            self._loop.call_later(_POLL_S, self._check)
            return
        self.streams.close_all()
        self._cancel_once_closed(time.monotonic() + LAST_WORDS_SECONDS + 1)

    def _cancel_once_closed(self, until: float) -> None:
        """Cancel the runs left once every stream has had its last words, not before: a run
        cancelled first ends at its next span, and whether its `pipeline_completed` or the
        stream's `server_shutdown` came last would be a race between the run's thread and
        this loop (the stream sends what is there, then its notice unless the run ended)."""
        assert self._loop is not None
        if self.streams.streams and time.monotonic() < until:
            self._loop.call_later(_POLL_S, self._cancel_once_closed, until)
            return
        self.runner.cancel_all()

    def end(self, on_leftovers: Callable[[str], None]) -> None:
        """At lifespan shutdown: runs that still have not ended are marked failed."""
        self.uninstall()
        if self.runner.running:
            on_leftovers("the server shut down while the run was running")
