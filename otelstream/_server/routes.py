"""The runs API's route table: one row per endpoint of `RunsAPI` (`api.py`), in the order
routes are matched, with the answer texts its rows document.

A row names its endpoint and dependencies by their `RunsAPI` method names, so the table is
read without the endpoints; `routing.Route` is a row and the OpenAPI answers it documents,
and `otelstream.fastapi.create_router` registers each row behind the app's guards.
"""

from __future__ import annotations

from typing import Any

from otelstream._server.routing import Route

EVENTS = "The run's events, as they happen."
OTLP_ANSWERS: dict[int | str, dict[str, Any]] = {
    code: {"description": text}
    for code, text in {
        200: "`Export…ServiceResponse` in the request's encoding, with `partial_success`.",
        400: "The body does not decode (a `google.rpc.Status` says why).",
        401: "The bearer token (`OTELSTREAM_OTLP_TOKEN`) is missing or wrong.",
        413: "The body is over `otlp_max_body_bytes`.",
        415: "Neither `application/x-protobuf` nor `application/json`.",
        503: "The hub cannot be reached: retry after `Retry-After` seconds.",
    }.items()
}
ROUTES = (
    Route("POST", "/run-workflow", "run_workflow", "start", ("stream_room",),
          errors=(404, 409, 413, 503), stream=EVENTS, typed_body=True),
    Route("GET", "/pipelines", "list_pipelines", "start"),
    Route("GET", "/pipelines/{name}/history", "pipeline_history", "start", errors=(404, 503)),
    Route("POST", "/runs", "start_run", "start", status_code=202,
          errors=(404, 409, 413, 503), typed_body=True, exclude_none=True),
    # GET /runs and /runs/live before /runs/{run_id}: `live` is never taken for a run id
    Route("GET", "/runs", "list_runs", "start", errors=(422, 503)),
    Route("GET", "/runs/live", "runs_live", "start", ("stream_room",),
          errors=(422, 503), stream="run_started and run_ended, live"),
    Route("GET", "/runs/{run_id}/events", "run_events", "watch", ("run_stream_room",),
          errors=(404, 503), stream=EVENTS,
          more={204: {"description": "The run is over and the client has every event."}}),
    Route("GET", "/runs/{run_id}", "get_run", "watch", errors=(404, 503)),
    Route("DELETE", "/runs/{run_id}", "cancel_run", "watch", status_code=202,
          errors=(404, 409, 503)),
    Route("POST", "/v1/traces", "otlp_traces", "otlp", more=OTLP_ANSWERS),
    Route("POST", "/v1/logs", "otlp_logs", "otlp", more=OTLP_ANSWERS),
)  # fmt: skip
"""The route table: one row per endpoint, in the order routes are matched."""


__all__ = ["ROUTES"]
