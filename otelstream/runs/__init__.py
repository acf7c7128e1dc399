"""Starting runs: the root span with its run mark, cancellation, the pool that runs pipelines."""

from otelstream.runs._runner import (
    Pipeline,
    PipelineRunner,
    RunHandle,
    RunsFull,
    UnknownPipeline,
    streamed_run,
)

__all__ = [
    "Pipeline",
    "PipelineRunner",
    "RunHandle",
    "RunsFull",
    "UnknownPipeline",
    "streamed_run",
]
