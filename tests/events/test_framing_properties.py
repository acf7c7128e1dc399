"""Whatever a task's name, error or attributes hold, the wire carries exactly the event sent."""

from __future__ import annotations

import asyncio
import json

from httpx_sse._decoders import SSEDecoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otelstream import MemoryHub, streamed_run
from otelstream.events import Event
from otelstream.testing import next_batch
from tests.conftest import make_telemetry

texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=200)


def published(hub: MemoryHub, run_id: str) -> list[Event]:
    async def drain() -> list[Event]:
        async with hub.subscribe(run_id) as subscription:
            return await next_batch(subscription, timeout=5) or []

    return asyncio.run(drain())


def parse(wire: bytes) -> list[tuple[str, str]]:
    """(id, data) of each message, split and decoded as the SSE spec says."""
    decoder = SSEDecoder()
    messages = []
    text = wire.decode("utf-8", "replace")
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        message = decoder.decode(line)
        if message is not None and message.data:
            messages.append((message.id, message.data))
    return messages


@given(name=texts, message=texts, value=texts)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_span_content_survives_the_wire(name: str, message: str, value: str) -> None:
    telemetry = make_telemetry(attribute_allowlist=frozenset({"note"}), max_string_length=64)
    with streamed_run("p", tracer_provider=telemetry.provider) as run:
        try:
            with telemetry.tracer.start_as_current_span(f"task:{name}", attributes={"note": value}):
                raise RuntimeError(message)
        except RuntimeError:
            pass
    sent = published(telemetry.hub, run.run_id)
    received = parse(b"".join(event.sse for event in sent))
    assert [int(i) for i, _ in received] == [1, 2, 3, 4]
    events = [event.to_dict() for event in sent]
    assert [json.loads(data) for _, data in received] == events
    task_error = events[2]
    assert task_error["type"] == "task_error"
    assert len(task_error["name"]) <= 64 and len(task_error["error"]) <= 64
    assert task_error["attributes"]["note"] == (value if len(value) <= 64 else value[:63] + "…")
    if len(name) <= 64:
        assert task_error["name"] == name
    telemetry.provider.shutdown()
