"""Starting runs: the root span with its run mark, and a bounded pool that executes pipelines."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context, attach, detach, get_current
from opentelemetry.trace import Span, Status, StatusCode

from otelstream._context import RUN_KEY, marked_context
from otelstream.settings import Settings

logger = logging.getLogger("otelstream.runs")

Pipeline = Callable[..., Any]
"""Called with the run's parameters; if it returns something with `execute()`, that runs too."""


@dataclass(frozen=True)
class RunHandle:
    run_id: str
    """The trace id, 32 lowercase hex characters: the run's name in the stream and in Jaeger."""
    name: str
    span: Span


class UnknownPipeline(LookupError):
    pass


class RunsFull(RuntimeError):
    """Every worker is busy and the queue of waiting runs is full, or the runner is shut down."""


def _tracer(tracer_provider: trace.TracerProvider | None) -> trace.Tracer:
    return trace.get_tracer("otelstream", tracer_provider=tracer_provider)


def _run_id(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


@contextmanager
def streamed_run(
    name: str, *, tracer_provider: trace.TracerProvider | None = None
) -> Iterator[RunHandle]:
    """Stream a block of your own code: opens the root span `pipeline:{name}` and yields the run.

    Spans opened inside the block (and in threads that carry its context)
    become the run's tasks. Inside another streamed run it is just a task.
    """
    token = None if get_current().get(RUN_KEY) is not None else attach(marked_context(name))
    try:
        span = _tracer(tracer_provider).start_span(f"pipeline:{name}")
        with trace.use_span(span, end_on_exit=True):
            yield RunHandle(_run_id(span), name, span)
    finally:
        if token is not None:
            detach(token)


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
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._closed = False
        self._waiting: dict[_Job, None] = {}  # runs not yet picked up by a worker

    def start(
        self, name: str, parameters: Mapping[str, Any] | None = None, context: Context | None = None
    ) -> RunHandle:
        """Start `name` under `context` (default: the current one).

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
            marked = marked_context(name, context)
            span = self._tracer.start_span(f"pipeline:{name}", context=marked)
        except BaseException:
            self._slots.release()
            raise
        job = _Job(trace.set_span_in_context(span, marked), span, pipeline, dict(parameters or {}))
        self._waiting[job] = None
        try:
            job.future = self._executor().submit(self._execute, job)
        except BaseException as exc:  # shut down meanwhile: the run must still end
            self._waiting.pop(job, None)
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, "the run could not be started"))
            span.end()
            self._slots.release()
            raise
        return RunHandle(_run_id(span), name, span)

    def open(self) -> None:
        """Accept runs again after `shutdown` (an app whose lifespan starts a second time)."""
        with self._pool_lock:
            self._closed = False

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._closed:
                raise RunsFull("the server is shutting down")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.settings.max_workers, thread_name_prefix="otelstream-run"
                )
            return self._pool

    def _execute(self, job: _Job) -> None:
        self._waiting.pop(job, None)
        token = attach(job.context)
        try:
            with trace.use_span(job.span, end_on_exit=True):
                result = job.pipeline(**job.parameters)
                execute = getattr(result, "execute", None)
                if callable(execute):
                    result = execute()
                if inspect.isawaitable(result):
                    asyncio.run(_wait_for(result))
        except Exception:
            logger.warning("run %s failed", _run_id(job.span), exc_info=True)
        finally:
            detach(token)
            self._slots.release()

    def shutdown(self) -> None:
        """Refuse new runs; runs still waiting for a worker end as errors, running ones finish."""
        with self._pool_lock:
            pool, self._pool, self._closed = self._pool, None, True
        if pool is None:
            return
        for job in list(self._waiting):
            if job.future is not None and job.future.cancel():
                job.span.set_status(
                    Status(StatusCode.ERROR, "the server shut down before the run began")
                )
                job.span.end()
                self._slots.release()
        self._waiting.clear()
        pool.shutdown(wait=False, cancel_futures=True)


class _Job:
    __slots__ = ("context", "future", "parameters", "pipeline", "span")

    def __init__(
        self, context: Context, span: Span, pipeline: Pipeline, parameters: dict[str, Any]
    ) -> None:
        self.context = context
        self.span = span
        self.pipeline = pipeline
        self.parameters = parameters
        self.future: Future[None] | None = None


async def _wait_for(awaitable: Any) -> Any:
    return await awaitable
