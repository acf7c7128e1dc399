import importlib

import pytest

import otelstream
import otelstream.fastapi

PUBLIC_MODULES = [
    "otelstream",
    "otelstream.cli",
    "otelstream.client",
    "otelstream.events",
    "otelstream.fastapi",
    "otelstream.hubs",
    "otelstream.hubs.memory",
    "otelstream.processors",
    "otelstream.propagation",
    "otelstream.runs",
    "otelstream.sampling",
    "otelstream.settings",
    "otelstream.telemetry",
    "otelstream.testing",
]


def test_all_exports_import() -> None:
    for name in otelstream.__all__:
        assert hasattr(otelstream, name), name
    assert otelstream.__all__ == sorted(otelstream.__all__)


def test_nothing_public_is_missing_from_all() -> None:
    for name in otelstream.__all__:
        getattr(otelstream, name)  # every lazy name loaded
    public = {
        name
        for name, value in vars(otelstream).items()
        if not name.startswith("_") and not isinstance(value, type(otelstream))
    }
    assert public == set(otelstream.__all__)


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_public_modules_say_what_they_export(module: str) -> None:
    mod = importlib.import_module(module)
    exported = mod.__all__
    assert len(set(exported)) == len(exported), module
    for name in exported:
        assert hasattr(mod, name), f"{module}.{name}"


def test_contract_names() -> None:
    from otelstream import EventStreamProcessor, MemoryHub  # noqa: F401
    from otelstream.fastapi import create_router  # noqa: F401
