"""RunSampler: streamed runs are always recorded, whatever the export sampler decides.

The SDK never hands a dropped (non-recording) span to any processor, so a
sampler that drops a trace for export would also silence its stream. Wrap the
sampler you use, and a DROP inside a streamed run becomes RECORD_ONLY: the run
streams completely while `BatchSpanProcessor` still exports only what the
wrapped sampler sampled.

    provider = TracerProvider(sampler=RunSampler(ParentBased(TraceIdRatioBased(0.1))))
    logfire.configure(..., sampling=logfire.SamplingOptions(head=RunSampler(...)))

`otelstream.telemetry.setup_telemetry` does this for the providers it builds;
a provider you build yourself needs it too.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace import sampling
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from otelstream.runs._mark import RUN_KEY

__all__ = ["RunSampler", "sampler_from_env"]


class RunSampler(Sampler):
    """Keeps the wrapped sampler's decision, except DROP inside a streamed run: RECORD_ONLY.

    The context is looked at only when the wrapped sampler drops, so sampled
    spans and spans of traces that are not streamed cost one comparison more.
    """

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if result.decision is not Decision.DROP:
            return result
        context = get_current() if parent_context is None else parent_context
        if context.get(RUN_KEY) is None:
            return result
        return SamplingResult(Decision.RECORD_ONLY, result.attributes, result.trace_state)

    def get_description(self) -> str:
        return f"RunSampler{{{self.sampler.get_description()}}}"


def sampler_from_env() -> Sampler:
    """The sampler that `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` name, wrapped.

    The SDK parses these variables only inside `TracerProvider()`; its parser is
    private, so this is the one place otelstream reaches for it.
    """
    return RunSampler(sampling._get_from_env_or_default())
