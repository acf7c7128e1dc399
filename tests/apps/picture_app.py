"""The page's example app with one more pipeline, `tour`, for the README's picture.

`tour`: a check that fails (and is handled, so the run goes on), then the example's ingest
(log lines and progress). The example's app reads its registry when it is imported, so `tour`
is added first; only this process sees it.
"""

from __future__ import annotations

import contextlib
import importlib
from functools import partial

pipelines = importlib.import_module("examples.fastapi-telemetry.pipelines")


def tour_pipeline(files: int = 8, seconds: float = 0.4) -> object:
    """validate fails and is handled; then read the files (logs, progress) and index them."""

    def run() -> int:
        with contextlib.suppress(ValueError):  # the task failed; the run goes on
            pipelines.validate(-1)
        return int(pipelines.index_rows(pipelines.read_files(files, seconds)))

    return pipelines.Pipeline(run)


pipelines.PIPELINE_REGISTRY["tour"] = partial(tour_pipeline)

from .ui_example import app  # noqa: E402  (after `tour` is in the registry)

__all__ = ["app"]
