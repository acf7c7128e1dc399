import otelstream
import otelstream.fastapi


def test_all_exports_import() -> None:
    for name in otelstream.__all__:
        assert hasattr(otelstream, name), name
    assert otelstream.__all__ == sorted(otelstream.__all__)


def test_nothing_public_is_missing_from_all() -> None:
    public = {
        name
        for name, value in vars(otelstream).items()
        if not name.startswith("_") and not isinstance(value, type(otelstream))
    }
    assert public == set(otelstream.__all__)


def test_contract_names() -> None:
    from otelstream import EventStreamProcessor, MemoryHub  # noqa: F401
    from otelstream.fastapi import create_router  # noqa: F401
