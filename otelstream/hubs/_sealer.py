"""What a run's end leaves to do (frames packed, the tree in columns), done off the thread that
ended the run's root span: one daemon thread a hub, there while there is work.

Sealing frames every event nobody has read yet; on the span thread that was a
quarter of a burst's samples, paid by the pipeline that ended. Here it is paid
by a thread of its own, which ends after a second with nothing to do (a hub left
behind holds no thread) and starts again with the next run's end.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Final

from otelstream._errors import report

_IDLE_S: Final = 1.0
"""How long the thread waits for more work before it ends."""


class Sealer:
    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._pending = 0
        self._thread: threading.Thread | None = None

    def put(self, work: Callable[[], None]) -> None:
        """Any thread: `work()` runs soon on the sealing thread."""
        with self._lock:
            self._pending += 1
            self._queue.put(work)
            if self._thread is None or not self._thread.is_alive():  # none yet, or forked
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def idle(self) -> bool:
        return self._pending == 0

    def wait(self, timeout: float) -> bool:
        """Until everything put before is done (True), or `timeout` seconds (False)."""
        with self._lock:
            return self._settled.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        while True:
            try:
                work = self._queue.get(timeout=_IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                work()
            except Exception:
                report("otelstream: sealing a finished run")
            finally:
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._settled.notify_all()
