"""The `otelstream` command: follow a run and draw its live tree, list runs, serve an app."""

from otelstream.cli._main import (
    main,
)

__all__ = [
    "main",
]
