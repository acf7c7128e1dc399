"""A write's deadline without a timer a write (`otelstream._server.send_watch.SendWatch`), on a real
event loop; the stalled-client tests drive it through uvicorn and a socket that stops reading."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from otelstream._server.send_watch import SendWatch

MESSAGE: dict[str, Any] = {"type": "http.response.body", "body": b"x", "more_body": True}


async def accepted(message: Any) -> None:
    return None


def test_writes_accepted_at_once_share_one_timer_and_are_never_cut() -> None:
    async def scenario() -> int:
        task = asyncio.current_task()
        assert task is not None
        watch = SendWatch(task)
        loop = asyncio.get_running_loop()
        armed = 0
        call_at = loop.call_at

        def counting(when: float, callback: Any, *args: Any, **kw: Any) -> asyncio.TimerHandle:
            nonlocal armed
            armed += getattr(callback, "__self__", None) is watch
            return call_at(when, callback, *args, **kw)

        loop.call_at = counting  # type: ignore[method-assign]
        try:
            for _ in range(1_000):
                await watch.send(accepted, MESSAGE, 0.05)
            await asyncio.sleep(0.12)  # its timer fires with no write in progress: nothing
            await watch.send(accepted, MESSAGE, 0.05)
        finally:
            loop.call_at = call_at  # type: ignore[method-assign]
            watch.close()
        return armed

    assert asyncio.run(scenario()) == 2  # the first write's timer, then the one after it fired


def test_a_write_not_accepted_within_its_limit_raises_timeout_and_the_task_goes_on() -> None:
    async def scenario() -> tuple[float, bool]:
        task = asyncio.current_task()
        assert task is not None
        watch = SendWatch(task)

        async def stalled(message: Any) -> None:
            await asyncio.sleep(10)

        await watch.send(accepted, MESSAGE, 0.2)  # a first write arms the timer
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await watch.send(stalled, MESSAGE, 0.2)
        waited = time.monotonic() - started
        await asyncio.sleep(0)  # not cancelled any more: the stream may write its notice
        watch.close()
        return waited, task.cancelling() == 0

    waited, clean = asyncio.run(scenario())
    assert 0.15 <= waited < 1.0
    assert clean


def test_a_shorter_limit_moves_the_timer_earlier() -> None:
    """A shutdown's last words wait 2 s, not the 30 s of the write before them."""

    async def scenario() -> float:
        task = asyncio.current_task()
        assert task is not None
        watch = SendWatch(task)

        async def stalled(message: Any) -> None:
            await asyncio.sleep(10)

        await watch.send(accepted, MESSAGE, 30)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await watch.send(stalled, MESSAGE, 0.2)
        watch.close()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 1.0


def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    """A client that left cancels the stream's task: that is not a stalled write."""

    async def scenario() -> None:
        async def stalled(message: Any) -> None:
            await asyncio.sleep(10)

        async def stream() -> None:
            task = asyncio.current_task()
            assert task is not None
            watch = SendWatch(task)
            try:
                await watch.send(stalled, MESSAGE, 5)
            finally:
                watch.close()

        task = asyncio.create_task(stream())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
