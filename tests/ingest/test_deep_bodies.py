"""Bodies nested far too deep are a 400 with a message, never a 500 (issue 28.10): OTLP/JSON
arrays 5,000 deep, a key-value list 600 deep, a protobuf AnyValue 200 deep; over HTTP to
both endpoints, and over gRPC (INVALID_ARGUMENT)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.ingest.test_grpc import Served, serve_grpc
from tests.ingest.test_ingest import TOKEN

JSON = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
PROTOBUF = {"content-type": "application/x-protobuf", "authorization": f"Bearer {TOKEN}"}


def deep_arrays(depth: int = 5_000) -> bytes:
    return ('{"resourceSpans": ' + "[" * depth + "]" * depth + "}").encode()  # ~10 KB


def deep_kvlist(depth: int = 600) -> bytes:
    """Written as text: Python's own json cannot write (or read) it back, which is the point."""
    value = '{"kvlistValue": {"values": [{"key": "k", "value": ' * depth
    value += '{"stringValue": "x"}' + "}]}}" * depth
    span = f'{{"traceId": "{"1" * 32}", "spanId": "{"2" * 16}", "name": "s", "attributes": '
    span += f'[{{"key": "deep", "value": {value}}}]}}'
    return f'{{"resourceSpans": [{{"scopeSpans": [{{"spans": [{span}]}}]}}]}}'.encode()


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field, written by hand: the library refuses to build
    a message this deep, as its parser refuses to read one."""

    def varint(n: int) -> bytes:
        out = b""
        while n > 0x7F:
            out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
        return out + bytes([n])

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def deep_protobuf(depth: int = 200) -> bytes:
    value = AnyValue(string_value="x").SerializeToString()
    for _ in range(depth):  # AnyValue.kvlist_value(6) > KeyValueList.values(1) > KeyValue
        value = _field(6, _field(1, _field(1, b"k") + _field(2, value)))
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="s").SerializeToString()
    span += _field(9, _field(1, b"deep") + _field(2, value))  # Span.attributes
    return _field(1, _field(2, _field(2, span)))  # resource_spans > scope_spans > spans


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    yield from serve_grpc(otlp_token=TOKEN)


@pytest.mark.parametrize("path", ["/v1/traces", "/v1/logs"])
@pytest.mark.parametrize(
    ("body", "headers"),
    [(deep_arrays(), JSON), (deep_kvlist(), JSON), (deep_protobuf(), PROTOBUF)],
    ids=["json-arrays-5000", "json-kvlist-600", "protobuf-anyvalue-200"],
)
def test_a_body_nested_too_deep_is_a_400_with_a_message(
    served: Served, path: str, body: bytes, headers: dict[str, str]
) -> None:
    response = served.app.client.post(path, content=body, headers=headers)
    assert response.status_code == 400, (response.status_code, response.text[:200])
    assert response.headers["content-type"].startswith(headers["content-type"])
    assert b"deep" in response.content or b"not a valid" in response.content
    assert served.app.client.get("/pipelines").status_code == 200  # and the server goes on


def test_over_grpc_it_is_invalid_argument(served: Served) -> None:
    refused = served.refused(deep_protobuf())
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.details()
