"""The threads that execute pipelines: a bounded pool of daemon threads.

`ThreadPoolExecutor`'s threads are joined when the interpreter exits, so a
pipeline blocked where cancellation cannot reach it (a long `time.sleep`, a
blocking call, code that opens no span) would hold the process for as long as
it blocks, past the shutdown grace period. These threads are daemons: once the
app's shutdown has told every stream and marked every run still going as failed,
the process exits and takes them with it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_Work = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...]]


class DaemonPool:
    """`submit` and `shutdown` as `ThreadPoolExecutor` has them, on at most `max_workers`
    daemon threads, started as work arrives (an idle thread takes the next job first)."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        self.max_workers = max_workers
        self.thread_name_prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shut_down = False

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.put((future, fn, args))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self.thread_name_prefix}_{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more work; with `cancel_futures`, cancel what no thread has begun."""
        with self._lock:
            self._shut_down = True
            if cancel_futures:
                while True:
                    try:
                        work = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if work is not None:
                        work[0].cancel()
            self._queue.put(None)  # each thread passes it on and stops
        if wait:
            for thread in list(self._threads):
                thread.join()

    def _work(self) -> None:
        while (work := self._queue.get()) is not None:
            future, fn, args = work
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)
            del work, future, fn, args  # hold nothing of a finished job while idle
            self._idle.release()
        self._queue.put(None)


__all__ = ["DaemonPool"]
