"""The logfire variant of the example app, as `uvicorn --factory` builds it (for app_process)."""

from importlib import import_module

app = import_module("examples.fastapi-telemetry.logfire_pipelines").create_app()
