"""Starting runs: the root span with its run mark, and a bounded pool that executes pipelines."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.trace import Span, Status, StatusCode

from otelstream.events._inert import inert
from otelstream.events._wire import OUTCOME_LOGGER
from otelstream.hubs import _handoffs
from otelstream.runs._mark import RUN_KEY, RunCancelled, RunMark, marked_context
from otelstream.runs._pool import DaemonPool
from otelstream.runs._streamed import (
    RunHandle,
    RunsFull,
    UnknownPipeline,
    _run_id,
    _tracer,
    streamed_run,
)
from otelstream.settings import Settings

logger = logging.getLogger("otelstream.runs")
outcome_logger = logging.getLogger(OUTCOME_LOGGER)  # a run's end, inside its root span

Pipeline = Callable[..., Any]
"""Called with the run's parameters; if it returns something with `execute()`, that runs too."""


class PipelineRunner:
    """Runs registered pipelines in worker threads, each inside its own root span.

    The root span starts on the caller's thread, so the run id is known (and
    `pipeline_started` published) before `start` returns; the pipeline then
    runs on a worker with that span's context.
    """

    def __init__(
        self,
        pipelines: Mapping[str, Pipeline],
        *,
        settings: Settings | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.pipelines = dict(pipelines)
        self.settings = settings or Settings()
        self._tracer = _tracer(tracer_provider)
        self._slots = threading.BoundedSemaphore(
            self.settings.max_workers + self.settings.max_queued_runs
        )
        self._pool: DaemonPool | None = None
        self._pool_lock = threading.Lock()
        self._closed = False
        self._jobs: dict[str, _Job] = {}  # run id -> every run started here and not yet ended

    def start(
        self,
        name: str,
        parameters: Mapping[str, Any] | None = None,
        context: Context | None = None,
        expected: dict[str, tuple[float, float]] | None = None,
    ) -> RunHandle:
        """Start `name` under `context` (default: the current one); `expected` is what its
        history says is usual (`hubs._history.expectations`), for its events and overdue watch.

        Raises UnknownPipeline, or RunsFull when every worker and queue place is taken.
        """
        try:
            pipeline = self.pipelines[name]
        except KeyError:
            raise UnknownPipeline(name) from None
        if self._closed:
            raise RunsFull("the server is shutting down")
        if not self._slots.acquire(blocking=False):
            raise RunsFull(
                f"{self.settings.max_workers} runs are running and "
                f"{self.settings.max_queued_runs} waiting"
            )
        try:
            marked = marked_context(name, context, expected)
            shown = _parameters_text(parameters, self.settings.max_string_length)
            span = self._tracer.start_span(
                f"pipeline:{name}", context=marked, attributes={PARAMETERS_ATTRIBUTE: shown}
            )
        except BaseException:
            self._slots.release()
            raise
        mark = marked.get(RUN_KEY)
        assert isinstance(mark, RunMark)
        run_id = _run_id(span)
        job = _Job(run_id, mark, trace.set_span_in_context(span, marked), span, pipeline)
        job.parameters = dict(parameters or {})
        self._jobs[run_id] = job
        try:
            job.future = self._executor().submit(self._execute, job)
        except BaseException as exc:  # shut down meanwhile: the run must still end
            self._end_unstarted(job, exc, "the run could not be started")
            raise
        return RunHandle(run_id, name, span)

    def cancel(self, run_id: str) -> bool:
        """Ask a run started here to stop at its next span; False if it is not running here."""
        job = self._jobs.get(run_id)
        if job is None or getattr(job.span, "end_time", None) is not None:
            return False  # its root span has ended: so has the run, though its thread goes on
        job.mark.cancelled = True
        if job.future is not None and job.future.cancel():  # it never got a worker
            self._end_unstarted(job, RunCancelled(run_id), "cancelled before it began")
        return True

    @property
    def running(self) -> int:
        """Runs started here that have not ended, waiting ones included."""
        return len(self._jobs)

    def close(self) -> None:
        """Refuse new runs from now on; the ones started go on."""
        with self._pool_lock:
            self._closed = True

    def cancel_all(self) -> None:
        for run_id in list(self._jobs):
            self.cancel(run_id)

    def fail_running(self, reason: str) -> None:
        """End the root span of every run still going, as failed: the trace and stream say why.

        The pipeline's thread is not stopped (Python cannot); when it ends, its
        root span has ended already.
        """
        for job in list(self._jobs.values()):
            job.span.set_status(Status(StatusCode.ERROR, reason))
            job.span.end()

    def open(self) -> None:
        """Accept runs again after `shutdown` (an app whose lifespan starts a second time)."""
        with self._pool_lock:
            self._closed = False

    def _executor(self) -> DaemonPool:
        with self._pool_lock:
            if self._closed:
                raise RunsFull("the server is shutting down")
            if self._pool is None:
                self._pool = DaemonPool(
                    self.settings.max_workers, thread_name_prefix="otelstream-run"
                )
            return self._pool

    def _execute(self, job: _Job) -> None:
        token = attach(job.context)
        try:
            with trace.use_span(job.span, end_on_exit=True):
                # The run's own end-of-run record is logged while its root span is still open,
                # so it is in the run's stream too, not only in the export.
                try:
                    self._call(job)
                except RunCancelled:
                    outcome_logger.info("run %s was cancelled", job.run_id)
                    raise
                except Exception as exc:
                    self._await_handoffs(job)
                    text = _failure_text(exc, self.settings)
                    outcome_logger.warning("run %s failed: %s", job.run_id, text)
                    raise
                self._await_handoffs(job)
        except Exception:
            pass  # told above, and recorded on the root span as it ended
        finally:
            detach(token)
            self._jobs.pop(job.run_id, None)
            self._slots.release()

    def _await_handoffs(self, job: _Job) -> None:
        """Before the root span ends (in the run's thread, never in `on_end`): wait for the work
        the run handed to other processes (`otelstream.propagation`), and say what is out."""
        wait_s = self.settings.handoff_wait_seconds
        out = _handoffs.wait(job.run_id, wait_s)
        if out:
            job.span.set_attribute("otelstream.handoffs_out", out)
            logger.warning(
                "run %s ends with %d hand-off(s) still out after waiting %g s "
                "(OTELSTREAM_HANDOFF_WAIT_SECONDS): what they do from now on is exported, "
                "not streamed",
                job.run_id,
                out,
                wait_s,
            )

    @staticmethod
    def _call(job: _Job) -> None:
        if job.mark.cancelled:
            raise RunCancelled(job.run_id)
        result = job.pipeline(**job.parameters)
        execute = getattr(result, "execute", None)
        if callable(execute):
            result = execute()
        if inspect.isawaitable(result):
            asyncio.run(_wait_for(result))

    def _end_unstarted(self, job: _Job, exc: BaseException, message: str) -> None:
        if self._jobs.pop(job.run_id, None) is None:
            return  # ended already
        job.span.record_exception(exc)
        job.span.set_status(Status(StatusCode.ERROR, message))
        job.span.end()
        self._slots.release()

    def shutdown(self) -> None:
        """Refuse new runs; runs still waiting for a worker end as errors, running ones finish."""
        with self._pool_lock:
            pool, self._pool, self._closed = self._pool, None, True
        if pool is None:
            return
        for job in list(self._jobs.values()):
            if job.future is not None and job.future.cancel():
                error = RuntimeError("the server shut down before the run began")
                self._end_unstarted(job, error, str(error))
        pool.shutdown(wait=False, cancel_futures=True)


PARAMETERS_ATTRIBUTE = "otelstream.parameters"
"""The run's parameters as JSON, on its pipeline span: in the trace, and in the page's header
where `OTELSTREAM_ATTRIBUTE_ALLOWLIST` lets it reach the stream."""


def _parameters_text(parameters: Mapping[str, Any] | None, limit: int) -> str:
    text = json.dumps(dict(parameters or {}), default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _failure_text(exc: BaseException, settings: Settings) -> str:
    """A failed run's exception for the log: its message cut at `max_string_length` and on one
    line (a message may be a megabyte, or hold newlines that would read as log lines of their
    own), only its type when errors are redacted, then the traceback's frames."""
    kind = type(exc).__qualname__
    if settings.redact_errors:
        line = f"{kind} (message redacted: OTELSTREAM_REDACT_ERRORS)"
    else:
        message, limit = str(exc), settings.max_string_length
        if len(message) > limit:
            message = message[: limit - 1] + "…"
        line = f"{kind}: {inert(message)}"
    frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    return f"{line}\nTraceback (most recent call last):\n{frames}"


class _Job:
    __slots__ = ("context", "future", "mark", "parameters", "pipeline", "run_id", "span")

    def __init__(
        self, run_id: str, mark: RunMark, context: Context, span: Span, pipeline: Pipeline
    ) -> None:
        self.run_id = run_id
        self.mark = mark
        self.context = context
        self.span = span
        self.pipeline = pipeline
        self.parameters: dict[str, Any] = {}
        self.future: Future[None] | None = None


async def _wait_for(awaitable: Any) -> Any:
    return await awaitable


__all__ = ["Pipeline", "PipelineRunner", "RunHandle", "RunsFull", "UnknownPipeline", "streamed_run"]
