"""The client's errors, one class a kind of refusal, and how an HTTP answer becomes one of them.

Code that uses the client tells a 404 from a 422 from a 503 by the class it catches (every one is
a `ClientError`), and reads `status_code`, a 422's field `errors` and a 503's `retry_after` as
attributes: nothing has to parse an error's text. httpx's own exceptions never escape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class FieldError:
    """One problem a 422 names: `field` is its path in the request body (`parameters.seconds`),
    `message` what is wrong, `type` pydantic's code for it (`less_than_equal`)."""

    field: str
    message: str
    type: str | None = None

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ClientError(Exception):
    """The server refused a request, or could not be reached after the allowed retries.

    `status_code` is the server's answer (None when there was none); `detail` its reason as it
    sent it; `errors` the field errors of a 422 (empty otherwise).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        detail: str | None = None,
        errors: tuple[FieldError, ...] = (),
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail
        self.errors = errors


class ClientConnectionError(ClientError):
    """No answer from the server: refused, unreachable, or cut before it answered."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class NotFound(ClientError):
    """404: an unknown pipeline, or an unknown or expired run (or a wrong run token)."""


class RunNotFound(NotFound):
    """The server does not know the run (never started there, or expired)."""


class InvalidRequest(ClientError):
    """422: the request's body or parameters were refused; `errors` says which field and why."""


class Conflict(ClientError):
    """409: the run has already ended (a cancel), or its trace already has a run."""


class Unavailable(ClientError):
    """503: the server's hub cannot be reached, or it is full; nothing was started.
    `retry_after` is the server's `Retry-After` in seconds (None when it sent none)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.retry_after = retry_after


class MissedEvents(ClientError):
    """The server no longer has events this reader has not seen (its replay buffer moved on)."""

    def __init__(self, run_id: str, expected: int, got: int) -> None:
        super().__init__(
            f"run {run_id}: expected event {expected}, the server sent {got}; "
            f"events {expected} to {got - 1} are no longer kept"
        )
        self.run_id, self.expected, self.got = run_id, expected, got


_BY_STATUS: dict[int, type[ClientError]] = {404: NotFound, 409: Conflict, 422: InvalidRequest}


def refusal(
    response: httpx.Response, what: str | None, kind: type[ClientError] | None = None
) -> ClientError:
    """The error for a refusal of `what` (`the run did not start`): `what: 404 unknown
    pipeline 'x'`, a 422's errors a `field: problem` line each; with no `what`, the server's
    reason alone (`unknown or expired run '…'`)."""
    detail, errors = _reason(response)
    shown = "invalid request:" + "".join(f"\n  {e}" for e in errors) if errors else detail
    if what is None:
        message = shown or f"{response.status_code} {response.reason_phrase}"
    else:
        message = f"{what}: {response.status_code} {shown}".rstrip()
    fields: dict[str, Any] = {
        "status_code": response.status_code,
        "detail": detail,
        "errors": errors,
    }
    if response.status_code == 503:
        return Unavailable(message, retry_after=retry_after(response), **fields)
    if kind is None:
        kind = _BY_STATUS.get(response.status_code, ClientError)
    return kind(message, **fields)


def answered(response: httpx.Response) -> str:
    """`the server answered 503: Redis cannot be reached`, as a retry is told."""
    detail, _ = _reason(response)
    if not detail:
        return f"the server answered {response.status_code} {response.reason_phrase}"
    return f"the server answered {response.status_code}: {detail}"


def retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds, when it is a number (the server never sends a date)."""
    value = response.headers.get("retry-after", "")
    return float(value) if value.replace(".", "", 1).isdigit() else None


def _reason(response: httpx.Response) -> tuple[str, tuple[FieldError, ...]]:
    """The server's `detail` as text, and a 422's errors (FastAPI sends them as its list)."""
    try:
        body = response.json()
    except ValueError:
        return response.text, ()
    detail = body.get("detail", response.text) if isinstance(body, dict) else response.text
    if isinstance(detail, list):
        errors = tuple(_field_error(item) for item in detail)
        return "invalid request", errors
    return str(detail), ()


def _field_error(item: Any) -> FieldError:
    """`parameters.seconds`: a 422's `loc` is `["body", PIPELINE, "parameters", FIELD, ...]`
    (pydantic puts the pipeline's name, the tag that chose its model, after "body"); the
    field's path in the request body is what a person sent."""
    if not isinstance(item, dict):
        return FieldError("", str(item))
    loc = [str(part) for part in item.get("loc") or []]
    if loc[:1] == ["body"]:
        loc = loc[1:]
    if len(loc) > 1 and loc[1] in ("parameters", "pipeline_name"):
        loc = loc[1:]  # the tag
    kind = item.get("type")
    return FieldError(
        ".".join(loc), str(item.get("msg", item)), kind if isinstance(kind, str) else None
    )


__all__ = [
    "ClientConnectionError",
    "ClientError",
    "Conflict",
    "FieldError",
    "InvalidRequest",
    "MissedEvents",
    "NotFound",
    "RunNotFound",
    "Unavailable",
    "answered",
    "refusal",
    "retry_after",
]
