"""Part 3's prose: why the figures are what they are, said from the figures themselves."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.fanout import Result

OURS = "otelstream"  # the servers' keys, shared with bench.fanout
SPANS = "otelstream-spans"
LEAN = "otelstream-lean"


def why(results: dict[tuple[str, str], list[Result]]) -> str:
    def ratio(mode: str, key: str) -> float:
        ours = statistics.median(r.rate for r in results[mode, OURS])
        return ours / statistics.median(r.rate for r in results[mode, key])

    def cpu(mode: str, key: str) -> str:
        """otelstream's CPU per event over `key`'s; a smoke run's tiny sizes can measure 0."""
        theirs = statistics.median(r.cpu_per_k for r in results[mode, key])
        ours = statistics.median(r.cpu_per_k for r in results[mode, OURS])
        return f"{ours / theirs:.2f}x" if theirs > 0 else "an unmeasurable share of"

    return (
        "Where otelstream leads, it is for two reasons: each event is framed once for all "
        "its subscribers, and a stream writes everything pending as one chunk, so a burst "
        "costs a stream a few writes (the reads column), not one per event: in the burst "
        f"it delivers {ratio('burst', 'sse-starlette'):.1f}x sse-starlette's rate and "
        f"{ratio('burst', 'fastapi-sse'):.0f}x `fastapi.sse`'s, "
        f"{ratio('burst', 'per-event'):.2f}x the hand-rolled design writing one chunk per event. "
        "Where it does not: the hand-rolled design that joins pending events does both "
        f"too, and otelstream is at {ratio('burst', 'joined'):.2f}x its rate in the burst and "
        f"{ratio('trickle', 'joined'):.2f}x in the trickle, spending "
        f"{cpu('burst', 'joined')} and "
        f"{cpu('trickle', 'joined')} its CPU per event: what a "
        "hand-rolled list append does not pay (the hub's sequence, replay buffer and run tree, "
        "the projection on first read, a send deadline on every write, the router's "
        "limits and notices). In the trickle every server writes each event as a chunk of its "
        "own, so only the cost per event is left."
    )


def telemetry_note(results: dict[tuple[str, str], list[Result]]) -> str:
    def idle(key: str) -> float:
        return statistics.median(r.idle_kib for r in results["burst", key])

    def rate(key: str) -> float:
        return statistics.median(r.rate for r in results["burst", key])

    return (
        "The set-ups: every server sets the global tracer provider, so FastAPI's own telemetry "
        "is on in FastAPI apps (otelstream's and `fastapi.sse`). As it comes, it keeps a server "
        "span and its request state open for as long as a stream lasts: "
        f"{idle(SPANS) - idle(LEAN):+.1f} KiB per idle subscriber over FastAPI tracing off, "
        f"{rate(SPANS) / rate(LEAN) - 1:+.0%} in burst rate. The README's set-up leaves the "
        "streams out of it (`FastAPI(telemetry={'exclude': untraced_streams})`) and every other "
        f"route in: {idle(OURS) - idle(LEAN):+.1f} KiB, {rate(OURS) / rate(LEAN) - 1:+.0%}."
    )
