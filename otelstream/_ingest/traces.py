"""Spans of other services join the runs of their trace: route by trace id, dedupe, project.

A span joins a run when its trace id is a run the hub knows and that has not
ended: on either hub, started on any worker. It is streamed as the local
processor streams spans (`otelstream.processors._projection`: the same names, allowlist,
cuts, redaction and span filters), as `task_started` with its real start time and
`task_completed` or `task_error`, plus the `service` that sent it. Spans of other
traces, of runs that have ended, or with no parent in a run's trace (a run has
one root, streamed by the process that runs it; a second root would have no place in its
tree) are not stored: they are counted in the answer's `partial_success`, with why.
"""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.sdk.trace import ReadableSpan

from otelstream._ingest.seen import SeenSpans
from otelstream._ingest.spans import readable, scope_of, service_name, streams_itself
from otelstream.events import TASK_STARTED
from otelstream.hubs import Hub
from otelstream.processors import _projection as projection
from otelstream.processors._filters import GlobFilter, SpanFilter, code_filter
from otelstream.settings import Settings


class _Arrival:
    """One span of a batch that joins a run, before it is projected."""

    __slots__ = ("run_id", "service", "span")

    def __init__(self, run_id: str, span: ReadableSpan, service: str | None) -> None:
        self.run_id = run_id
        self.span = span
        self.service = service


class TraceIngest:
    """Takes `ExportTraceServiceRequest`s for the hub; one per router, used on its loop."""

    def __init__(self, hub: Hub, settings: Settings) -> None:
        self.hub = hub
        self.policy = projection.Policy(
            settings.attribute_allowlist, settings.max_string_length, settings.redact_errors
        )
        globs = GlobFilter(settings.span_include, settings.span_exclude)
        self.globs = globs if globs else None  # no globs: every span is a task, unless…
        self.seen = SeenSpans[str](settings.max_open_spans)
        # span id -> its nearest shown ancestor, of spans the filters hide (bounded as `seen`)
        self.hidden = SeenSpans[int](settings.max_open_spans)
        # span id -> the task name it streamed as: a log record received for it says it
        self.names: dict[int, str] = {}
        self._max_names = settings.max_open_spans

    async def export(self, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
        """Stream what joins a run; raises HubUnavailable when the hub cannot be reached."""
        runs = await self.runs(
            {
                span.trace_id
                for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            }
        )
        # span key (trace id and span id, hex) -> what joins a run, if the hub says it is new
        candidates: dict[str, tuple[str, OtlpSpan, Any, str | None]] = {}
        seen = self.seen.items
        unknown = ended = orphans = 0
        for resource_spans in request.resource_spans:
            resource = resource_spans.resource
            service, itself = service_name(resource), streams_itself(resource)
            for scope_spans in resource_spans.scope_spans:
                scope = scope_of(scope_spans.scope.name, scope_spans.scope.version)
                for span in scope_spans.spans:
                    run_id = runs.get(span.trace_id)
                    if run_id is None:
                        unknown += 1
                    elif run_id == "":
                        ended += 1
                    elif itself:
                        continue  # its own process streams it
                    elif not span.parent_span_id:
                        orphans += 1  # the run's root (its process streams it), or a second root
                    # not a span this worker took already (a batch sent again: the cheap filter)
                    else:
                        key = run_id + span.span_id.hex()
                        if key not in seen:
                            candidates[key] = (run_id, span, scope, service)
        fresh = await self._first_seen(candidates)
        # the stream processor's span_filter on this hub, read per batch (the processor may be
        # built after the router); it sees a service's span as it sees one of this process's:
        # with every attribute (events still show only the allowed ones)
        code = code_filter(self.hub)
        allowlist = None if code is not None else self.policy.allowlist
        arrivals = [
            _Arrival(run_id, readable(span, scope, allowlist), service)
            for key, (run_id, span, scope, service) in candidates.items()
            if key in fresh
        ]
        for key in candidates:  # taken only now: a 503 above leaves the retry its spans
            self.seen.add(key)
        self._publish(arrivals, code)
        return _answer(unknown, ended, orphans)

    async def runs(self, trace_ids: set[bytes]) -> dict[bytes, str]:
        """Trace id -> its run id, or "" for a run that has ended; unknown traces left out."""
        ids = [trace_id for trace_id in trace_ids if len(trace_id) == 16]
        positions = await asyncio.gather(*(self.hub.position(t.hex()) for t in ids))
        return {
            trace_id: ("" if position.finished else trace_id.hex())
            for trace_id, position in zip(ids, positions, strict=True)
            if position is not None
        }

    async def _first_seen(self, candidates: dict[str, tuple[Any, ...]]) -> set[str]:
        """The hub's word on which are new, once for every worker: one call per run."""
        by_run: dict[str, list[str]] = {}
        for key, (run_id, *_) in candidates.items():
            by_run.setdefault(run_id, []).append(key)
        answers = await asyncio.gather(
            *(self.hub.first_seen(run_id, keys) for run_id, keys in by_run.items())
        )
        return set().union(*answers)

    def _publish(self, arrivals: list[_Arrival], code: SpanFilter | None) -> None:
        """Starts in the order they happened, so a parent of the batch precedes its children,
        then the ends in theirs."""
        arrivals.sort(key=lambda arrival: arrival.span.start_time or 0)
        opened: list[tuple[_Arrival, projection.SpanEvent]] = []
        for arrival in arrivals:
            event = self._start(arrival, code)
            if event is not None:
                opened.append((arrival, event))
        opened.sort(key=lambda pair: pair[0].span.end_time or 0)
        for arrival, start in opened:
            kind = projection.end_type(arrival.span, start)
            end = projection.SpanEvent(
                kind, arrival.run_id, arrival.span, self.policy, start, service=arrival.service
            )
            self.hub.publish(arrival.run_id, end)

    def _start(self, arrival: _Arrival, code: SpanFilter | None) -> projection.SpanEvent | None:
        """Its start event, unless the settings' globs or the processor's `span_filter` (`code`,
        guarded: one that raises leaves the span out) hide it, as the processor decides."""
        span, parent = arrival.span, arrival.span.parent
        parent_id = parent.span_id if parent is not None else None
        shown = self.hidden.get(parent_id) if parent_id is not None else None
        if (self.globs is not None and not self.globs(span)) or (
            code is not None and not code(span)
        ):
            self.hidden.put(span.context.span_id, shown or parent_id)
            return None
        attributes = self.policy.attributes(span.attributes) if self.policy.allowlist else None
        event = projection.SpanEvent(
            TASK_STARTED,
            arrival.run_id,
            span,
            self.policy,
            attributes=attributes,
            shown_parent=shown,
            service=arrival.service,
        )
        names = self.names
        if len(names) >= self._max_names:
            del names[next(iter(names))]
        names[span.context.span_id] = event.name
        self.hub.publish(arrival.run_id, event)
        return event


def _answer(unknown: int, ended: int, orphans: int = 0) -> ExportTraceServiceResponse:
    if not unknown and not ended and not orphans:
        return ExportTraceServiceResponse()
    reasons = []
    if unknown:
        reasons.append(f"{unknown} spans of traces that are not streamed runs")
    if ended:
        reasons.append(f"{ended} spans of runs that have ended")
    if orphans:
        reasons.append(
            f"{orphans} spans with no parent in a streamed run's trace (a run has one root, "
            "streamed by the process that runs it; give the span its parent's context)"
        )
    partial = ExportTracePartialSuccess(
        rejected_spans=unknown + ended + orphans, error_message="; ".join(reasons) + ": not stored"
    )
    return ExportTraceServiceResponse(partial_success=partial)


__all__ = ["TraceIngest"]
