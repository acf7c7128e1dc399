"""Span -> Event: which spans of a run count, what a person calls them, what they may show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import Attributes

from otelstream._errors import report
from otelstream.events import (
    PIPELINE_COMPLETED,
    PIPELINE_STARTED,
    STARTED_TYPES,
    TASK_COMPLETED,
    TASK_ERROR,
    Event,
)
from otelstream.events._model import EVENT_BYTES, text_size
from otelstream.runs._mark import RunCancelled

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

    def message(self, text: str) -> str:
        """A log or progress message: cut as error messages are, withheld when they are."""
        return "(redacted)" if self.redact_errors else self.clip(text)

    def attributes(self, attributes: Attributes) -> dict[str, Any] | None:
        picked = allowed_attributes(attributes, self.allowlist)
        if picked:
            for key, value in picked.items():
                if isinstance(value, str):
                    picked[key] = self.clip(value)
                elif isinstance(value, list):
                    picked[key] = self.clip_list(value)
        return picked

    def clip_list(self, values: list[Any]) -> list[Any]:
        """A list attribute cut like a string: each element, and the whole past `max_length`
        characters of text (what is left out is one "…")."""
        kept: list[Any] = []
        room = self.max_length
        for value in values:
            text = self.clip(value) if isinstance(value, str) else value
            room -= len(text) if isinstance(text, str) else len(repr(text))
            if room < 0:
                kept.append("…")
                break
            kept.append(text)
        return kept


def allowed_attributes(attributes: Attributes, allowlist: frozenset[str]) -> dict[str, Any] | None:
    if not allowlist or not attributes:
        return None
    picked = {key: _plain(attributes[key]) for key in allowlist if key in attributes}
    return picked or None


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value


class SpanEvent(Event):
    """An event recorded on the span hot path and projected where it is first read.

    The span thread stores only what it cannot know later (the kind, the span,
    the run) and what the hub needs at once (`type`, `run_id`; the hub gives
    `seq`). The other fields are unset slots: the first read of any of them
    (the subscriber's `sse`, the hub's fold for `GET /runs/{id}`) lands in
    `__getattr__`, which projects them all from the span once, on the reader's
    thread, and lets go of the span. A started event is read from the live
    span: a name set with `update_name` after the start may show in it, and
    the end event takes its name from the start event, so both agree.
    """

    __slots__ = ("_opened", "_policy", "_shown_parent", "_span")

    def __init__(
        self,
        type: str,
        run_id: str,
        span: ReadableSpan,
        policy: Policy,
        opened: SpanEvent | None = None,
        name: str | None = None,
        attributes: dict[str, Any] | None = None,
        shown_parent: int | None = None,
        service: str | None = None,
    ) -> None:
        self.type = type
        self.run_id = run_id
        self.seq = 0
        self.errors_logged = 0  # set on a run's end by the stream processor
        self.service = service  # a span received over OTLP: the service that sent it
        self._sse = None
        self._span: ReadableSpan | None = span
        self._policy = policy
        self._opened = opened  # an end event's start event: its name
        # the nearest shown ancestor, when span filters hid the parent (the end: as the start)
        self._shown_parent: int | None = shown_parent if opened is None else opened._shown_parent
        if name is not None:  # known already (the run's name, logfire's rendered name)
            self.name = name
        if opened is None:  # a start: the attributes as they were at the start
            self.attributes = attributes

    def __getattr__(self, field: str) -> Any:
        """Only for a field not set yet (a slot that is still empty): project them all."""
        if field.startswith("__"):
            raise AttributeError(field)
        self._fill()
        return object.__getattribute__(self, field)  # a field that does not exist: raises

    @property
    def sse(self) -> bytes:
        """As `Event.sse`, projected first without a failed slot read (the common path)."""
        if self._sse is None and self._span is not None:
            self._fill()
        return super().sse

    def weight(self) -> int:
        """As `Event.weight`, without projecting: its fields are unset slots until then, so
        the span's own strings are weighed. An end holds them; a start's are the same ones
        (the live span shares them, and its task holds them anyway while it runs): counted
        once, at the end. It reads the SDK's own containers, not the public accessors, which
        copy (a few µs a span)."""
        size = EVENT_BYTES
        span = self._span
        if span is not None and self._opened is not None:
            size += text_size(_sdk_dict(getattr(span, "_attributes", None)))
            for span_event in getattr(span, "_events", None) or ():
                size += text_size(_sdk_dict(span_event.attributes))
        return size

    def _fill(self) -> None:
        """Two threads may read one event at once (the subscriber's loop, the hub's fold on
        the span thread): both project the same values from their own reference to the
        span; one that finds the span let go finds the fields set by the other."""
        opened = self._opened  # before the span: they are let go of span first
        span = self._span
        if span is not None:
            try:
                self._project(span, opened)
            except Exception:
                report("otelstream projection")
                self._fallback(span)
            self._span = None
            self._opened = None

    def _project(self, span: ReadableSpan, opened: SpanEvent | None) -> None:
        context, parent = span.context, span.parent
        self.span_id = context.span_id
        if not _has(self, "expected_ns"):  # set on the span thread for a run with a history
            self.expected_ns = self.expected_p90_ns = None
        policy = self._policy
        if self.type in STARTED_TYPES:
            self.parent_span_id = (
                None
                if self.type == PIPELINE_STARTED or parent is None
                else self._shown_parent or parent.span_id
            )
            self.time_ns = span.start_time or 0
            # named at the start: the run (always) and logfire's spans
            scope = span.instrumentation_scope
            named = self.type == PIPELINE_STARTED or (
                scope is not None and scope.name == "logfire" and _has(self, "name")
            )
            if not named:
                task = task_name(span.name, None)
                self.name = policy.clip(span.name if task is None else task)
            self.duration_ns = self.status = self.error = self.error_type = None
            return
        root = self.type == PIPELINE_COMPLETED
        self.parent_span_id = (
            None if root or parent is None else self._shown_parent or parent.span_id
        )
        end_ns = self.time_ns = span.end_time or 0
        self.duration_ns = end_ns - (span.start_time or end_ns)
        self.name = opened.name if opened is not None else policy.clip(span.name)
        failed = None if self.type == TASK_COMPLETED else failure(span)  # see `end_type`
        error = None if failed is None else policy.error(failed)
        self.status = _status(error) if root else None
        self.error = None if error is None else error[1]
        self.error_type = None if error is None else error[0]
        self.attributes = policy.attributes(span.attributes) if policy.allowlist else None

    def _fallback(self, span: ReadableSpan) -> None:
        """A projection that failed (a bug, reported): the event still frames and folds."""
        for field, value in (("span_id", 0), ("parent_span_id", None), ("time_ns", 0)):
            if not _has(self, field):
                setattr(self, field, value)
        fields = ("duration_ns", "status", "error", "error_type", "attributes", "expected_ns")
        for field in (*fields, "expected_p90_ns"):
            if not _has(self, field):
                setattr(self, field, None)
        if not _has(self, "name"):
            self.name = "?"


def _sdk_dict(values: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The SDK's `BoundedAttributes` as its inner dict, read without its lock; any other
    mapping as it is."""
    inner = getattr(values, "_dict", None)
    return inner if isinstance(inner, dict) else values


def _has(event: Event, field: str) -> bool:
    try:
        object.__getattribute__(event, field)
    except AttributeError:
        return False
    return True


def end_type(span: ReadableSpan, opened: SpanEvent) -> str:
    """The end event's type, on the hot path: a span with no events and no error status (most)
    costs two attribute reads; the others are looked into here."""
    if opened.type == PIPELINE_STARTED:
        return PIPELINE_COMPLETED
    # the SDK's own list, not `span.events` (a locked copy, 0.5 µs); any other span: `events`
    events = getattr(span, "_events", None)
    if events is None:
        events = span.events
    if not events and span.status.status_code is not StatusCode.ERROR:
        return TASK_COMPLETED
    return TASK_COMPLETED if failure(span) is None else TASK_ERROR


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
