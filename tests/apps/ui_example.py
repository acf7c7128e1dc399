"""The example app with the live page, behind `StreamWatch` (see tests/apps/ui_stream_watch.py)."""

from __future__ import annotations

import importlib

from otelstream._server.ui import ui_router

from .ui_stream_watch import StreamWatch

example = importlib.import_module("examples.fastapi-telemetry.main")
# Until create_router serves the page itself; harmless after: the first matching route answers.
example.app.include_router(ui_router())

app = StreamWatch(example.app)
