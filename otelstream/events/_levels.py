"""Log level names as OpenTelemetry severity numbers, for `OTELSTREAM_LOG_LEVEL` and events."""

from __future__ import annotations

_NUMBERS = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "WARNING": 13, "ERROR": 17}
_NUMBERS.update({"CRITICAL": 21, "FATAL": 21})
_NAMES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")  # each covers four numbers


def severity(level: str) -> int:
    """A level name (`INFO`, `warning`, ...) as the lowest severity number it covers."""
    try:
        return _NUMBERS[level.strip().upper()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}: use one of {sorted(_NUMBERS)}") from None


def level_name(number: int | None, text: str | None = None) -> str:
    """`INFO`, `WARN`, ...: the record's severity text, else the name of its number's range."""
    if text:
        return text
    if number is None or not 1 <= number <= 24:
        return "UNSPECIFIED"
    return _NAMES[(number - 1) // 4]
