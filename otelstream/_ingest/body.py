"""OTLP/HTTP bodies in and out: protobuf or JSON, gzip or not, bounded in bytes.

As the OTLP specification's HTTP transport says: a request is
`application/x-protobuf` or `application/json`, maybe `Content-Encoding: gzip`;
the answer is the service's response message in the request's encoding, and an
error's body is a `google.rpc.Status` in that encoding. JSON ids are hex (OTLP's
JSON mapping), not base64 (protobuf's), so they are converted before protobuf's own
`json_format` parses the rest, enums given as integers included.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

M = TypeVar("M", bound=Message)

# Fields that hold ids, by the OTLP JSON names (and protobuf's), with their length in bytes.
_IDS = {"traceId": 16, "trace_id": 16, "spanId": 8, "span_id": 8}
_PARENT = ("parentSpanId", "parent_span_id")
MAX_DEPTH = 100
"""JSON nested deeper than this is refused (400): protobuf's own bound on nested messages,
which a binary body meets in `ParseFromString`. A real export nests a dozen levels."""


class IngestError(Exception):
    """A request the receiver refuses: its HTTP status and a message for the sender."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def media_type(content_type: str) -> str:
    """The request's encoding, or 415 (the specification's answer to any other)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind not in (PROTOBUF, JSON):
        raise IngestError(415, f"unsupported content type {kind[:64]!r}: use {PROTOBUF} or {JSON}")
    return kind


async def read_body(
    chunks: AsyncIterator[bytes], content_length: str | None, encoding: str | None, limit: int
) -> bytes:
    """The whole body, refused with 413 as soon as it passes `limit` bytes, sent or unzipped
    (exporters in JavaScript send no Content-Length: the chunks are counted)."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise IngestError(413, f"the body is over {limit} bytes")
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise IngestError(413, f"the body is over {limit} bytes")
    coding = (encoding or "identity").strip().lower()
    if coding == "gzip":
        return _gunzip(bytes(body), limit)
    if coding != "identity":
        raise IngestError(415, f"unsupported content encoding {coding[:32]!r}: use gzip")
    return bytes(body)


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise IngestError(400, f"the body is not gzip: {exc}") from None
    if len(plain) > limit:
        raise IngestError(413, f"the body is over {limit} bytes once unzipped")
    if not inflater.eof:
        raise IngestError(400, "the gzip body is truncated")
    return plain


def parse(body: bytes, kind: str, message: type[M]) -> M:
    """The request as its protobuf message, or 400 with what is wrong."""
    parsed = message()
    if kind == PROTOBUF:
        try:
            parsed.ParseFromString(body)
        except RecursionError:
            raise IngestError(400, f"the body is nested deeper than {MAX_DEPTH} levels") from None
        except DecodeError as exc:
            raise IngestError(400, f"the body is not a valid {message.__name__}: {exc}") from None
        return parsed
    try:
        data = json.loads(body)
        _hex_ids_to_base64(data)
        json_format.ParseDict(data, parsed, ignore_unknown_fields=True)
    except RecursionError:  # json's own decoder, past Python's stack: nested far too deep
        raise IngestError(400, f"the body is nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, json_format.ParseError, TypeError, AttributeError) as exc:
        raise IngestError(400, f"the body is not a valid {message.__name__}: {exc}") from None
    return parsed


def _hex_ids_to_base64(data: Any) -> None:
    """OTLP JSON writes ids as hex; protobuf's JSON mapping reads bytes as base64. Walked
    without recursion, and refused past `MAX_DEPTH`, so no body can exhaust the stack of the
    parser that reads it next."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"the body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, list):
            stack.extend((item, depth + 1) for item in node if isinstance(item, (dict, list)))
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in _IDS or key in _PARENT:
                    size = 8 if key in _PARENT else _IDS[key]
                    node[key] = _hex_id(key, value, size)
                elif isinstance(value, (dict, list)):
                    stack.append((value, depth + 1))


def _hex_id(key: str, value: Any, size: int) -> str:
    if value == "" and size == 8:
        return ""  # a root span's empty parent id, or a log without a span
    if not isinstance(value, str) or len(value) != size * 2:
        raise ValueError(f"{key} must be {size * 2} hex digits (OTLP JSON), not {value!r:.40}")
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError:
        raise ValueError(f"{key} must be hex digits (OTLP JSON), not {value!r:.40}") from None


def serialize(message: Message, kind: str) -> bytes:
    """A response in the request's encoding."""
    if kind == PROTOBUF:
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode()


def status_body(error: IngestError, kind: str) -> bytes:
    """An error's body: a `google.rpc.Status` with the message, as the specification asks."""
    return serialize(
        status_pb2.Status(code=_GRPC_CODES.get(error.status, 2), message=error.message), kind
    )


_GRPC_CODES = {400: 3, 401: 16, 413: 8, 415: 3, 503: 14}  # INVALID_ARGUMENT, ... UNAVAILABLE


__all__ = [
    "JSON",
    "PROTOBUF",
    "IngestError",
    "media_type",
    "parse",
    "read_body",
    "serialize",
    "status_body",
]
