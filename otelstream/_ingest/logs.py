"""Log records of other services join the runs of their trace, as `task_log` under their span.

A record that carries the trace id of a run the hub knows (not ended) and a span
id becomes `task_log` through the local log path (`processors._sink.LogSink`): the
same level filter, per-run budget, cuts and redaction. The budget is this
worker's: each worker that receives a run's records counts them on its own.
Records of other traces, of ended runs or without a span id are counted in the
answer's `partial_success`. Each carries its `service` (resource `service.name`), its
`logger` (the scope's name) and the name of its span when this worker streamed that span,
so views draw it as the service's line, not as the local task's own.
"""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from otelstream._ingest.spans import attributes, service_name, streams_itself, value
from otelstream._ingest.traces import TraceIngest
from otelstream.events._levels import level_name
from otelstream.processors._sink import LogSink
from otelstream.runs._mark import RunMark
from otelstream.settings import Settings

_MAX_RUNS = 10_000
"""Runs whose log budget this worker keeps at once (the oldest is forgotten first)."""


class LogIngest:
    """Takes `ExportLogsServiceRequest`s; shares the trace ingest's routing and hidden spans."""

    def __init__(self, traces: TraceIngest, settings: Settings) -> None:
        self.traces = traces
        self.sink = LogSink(traces.hub, settings)
        self.marks: dict[str, RunMark] = {}
        self.allowlist = settings.attribute_allowlist

    async def export(self, request: ExportLogsServiceRequest) -> ExportLogsServiceResponse:
        records = [
            (resource_logs, scope_logs, record)
            for resource_logs in request.resource_logs
            for scope_logs in resource_logs.scope_logs
            for record in scope_logs.log_records
        ]
        runs = await self.traces.runs({record.trace_id for _, _, record in records})
        refused = 0
        for resource_logs, scope_logs, record in records:
            run_id = runs.get(record.trace_id)
            if not run_id or len(record.span_id) != 8:
                refused += 1
                continue
            if streams_itself(resource_logs.resource):
                continue  # its own process streams it
            span_id = int.from_bytes(record.span_id, "big")
            span_id = self.traces.hidden.get(span_id) or span_id  # under a hidden span
            scope = scope_logs.scope.name
            number = record.severity_number or None
            body = value(record.body)
            self.sink.log(
                self._mark(run_id),
                span_id,
                record.time_unix_nano or record.observed_time_unix_nano,
                number,
                level_name(number, record.severity_text),
                body if isinstance(body, str) else str(body),
                scope,
                attributes(record.attributes, self.allowlist) if self.allowlist else None,
                service_name(resource_logs.resource),
                self.traces.names.get(span_id) or scope,
            )
        if not refused:
            return ExportLogsServiceResponse()
        partial = ExportLogsPartialSuccess(
            rejected_log_records=refused,
            error_message=f"{refused} records without a span of a streamed run that has not "
            "ended: not stored",
        )
        return ExportLogsServiceResponse(partial_success=partial)

    def _mark(self, run_id: str) -> RunMark:
        """The run's log budget on this worker (a mark with no root here)."""
        mark = self.marks.get(run_id)
        if mark is None:
            if len(self.marks) >= _MAX_RUNS:
                del self.marks[next(iter(self.marks))]
            mark = self.marks[run_id] = RunMark("", 0)
            mark.run_id = run_id
        return mark


__all__ = ["LogIngest"]
