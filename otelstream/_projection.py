"""Span -> Event: which spans of a run count, what a person calls them, what they may show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import Attributes

from otelstream._context import RunCancelled
from otelstream.events import (
    PIPELINE_COMPLETED,
    PIPELINE_STARTED,
    TASK_COMPLETED,
    TASK_ERROR,
    TASK_STARTED,
    Event,
)

_PREFIXES = ("task:", "pipeline:")
_NOT_TASKS = frozenset({"log", "pending_span"})  # logfire's log records and start markers


def task_name(span_name: str, attributes: Attributes) -> str | None:
    """The name a person gives the task, or None when the span is not a task at all.

    `task:compute` is `compute`; logfire names a span by its template
    (`task:{name}`) and keeps the rendered text in `logfire.msg`.
    """
    if attributes:
        if attributes.get("logfire.span_type") in _NOT_TASKS:
            return None
        if "{" in span_name:
            rendered = attributes.get("logfire.msg")
            if isinstance(rendered, str):
                span_name = rendered
    for prefix in _PREFIXES:
        if span_name.startswith(prefix):
            return span_name[len(prefix) :]
    return span_name


class Policy:
    """What of a span may reach a browser: set once from the settings, read on every event."""

    __slots__ = ("allowlist", "max_length", "redact_errors")

    def __init__(
        self,
        allowlist: frozenset[str] = frozenset(),
        max_length: int = 4096,
        redact_errors: bool = False,
    ) -> None:
        self.allowlist = allowlist
        self.max_length = max_length
        self.redact_errors = redact_errors

    def clip(self, text: str) -> str:
        return text if len(text) <= self.max_length else text[: self.max_length - 1] + "…"

    def error(self, failed: tuple[str | None, str]) -> tuple[str | None, str]:
        """(type, message), the message replaced by the type when errors are redacted."""
        error_type, message = failed
        if self.redact_errors:
            return error_type, error_type or "error"
        return error_type, self.clip(message)

    def attributes(self, attributes: Attributes) -> dict[str, Any] | None:
        picked = allowed_attributes(attributes, self.allowlist)
        if picked:
            for key, value in picked.items():
                if isinstance(value, str):
                    picked[key] = self.clip(value)
        return picked


_DEFAULT_POLICY = Policy()


def allowed_attributes(attributes: Attributes, allowlist: frozenset[str]) -> dict[str, Any] | None:
    if not allowlist or not attributes:
        return None
    picked = {key: _plain(attributes[key]) for key in allowlist if key in attributes}
    return picked or None


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value


def started(
    *,
    is_root: bool,
    name: str,
    run_id: str,
    span_id: int,
    parent_span_id: int | None,
    start_ns: int,
    attributes: dict[str, Any] | None = None,
) -> Event:
    if is_root:
        return Event(PIPELINE_STARTED, name, run_id, span_id, None, start_ns, attributes=attributes)
    return Event(
        TASK_STARTED, name, run_id, span_id, parent_span_id, start_ns, attributes=attributes
    )


def ended(
    span: ReadableSpan,
    *,
    is_root: bool,
    name: str,
    run_id: str,
    policy: Policy = _DEFAULT_POLICY,
) -> Event:
    context, parent = span.context, span.parent
    end_ns = span.end_time or 0
    duration_ns = end_ns - (span.start_time or end_ns)
    failed = failure(span)
    error = None if failed is None else policy.error(failed)
    attributes = policy.attributes(span.attributes) if policy.allowlist else None
    if is_root:
        return Event(
            PIPELINE_COMPLETED,
            name,
            run_id,
            context.span_id,
            None,
            end_ns,
            duration_ns=duration_ns,
            status=_status(error),
            error=None if error is None else error[1],
            error_type=None if error is None else error[0],
            attributes=attributes,
        )
    return Event(
        TASK_COMPLETED if error is None else TASK_ERROR,
        name,
        run_id,
        context.span_id,
        None if parent is None else parent.span_id,
        end_ns,
        duration_ns=duration_ns,
        error=None if error is None else error[1],
        error_type=None if error is None else error[0],
        attributes=attributes,
    )


def _status(error: tuple[str | None, str] | None) -> str:
    if error is None:
        return "success"
    return "cancelled" if error[0] == RunCancelled.__name__ else "error"


def failure(span: ReadableSpan) -> tuple[str | None, str] | None:
    """(class name, message) of the span's failure: its last exception, else an ERROR status."""
    for event in reversed(span.events):
        if event.name == "exception":
            attributes: Mapping[str, Any] = event.attributes or {}
            qualified = str(attributes.get("exception.type", ""))
            return qualified.rpartition(".")[2] or None, str(
                attributes.get("exception.message", "")
            )
    if span.status.status_code is StatusCode.ERROR:
        return None, span.status.description or ""
    return None
