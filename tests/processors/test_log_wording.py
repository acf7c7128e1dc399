"""otelstream's own lines say each thing once: no doubled prefix, no "(0 more not logged)",
no full stop before "retry", no "0 runs have … to finish" (issue 28.9's log wording)."""

from __future__ import annotations

import logging

import pytest

from otelstream import _errors
from otelstream.hubs import HubUnavailable
from otelstream.processors._log_handlers import ConsoleFallback


def test_a_rate_limited_warning_counts_only_what_it_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _errors.warnings_limit.reset()
    with caplog.at_level(logging.WARNING, logger="otelstream"):
        _errors.warn_limited("otelstream: a bound of %d was reached", 3)
        _errors.warn_limited("otelstream: a bound of %d was reached", 3)  # held back
        _errors.warnings_limit.last = float("-inf")  # as if its interval had passed
        _errors.warn_limited("otelstream: a bound of %d was reached", 3)
    assert [r.getMessage() for r in caplog.records] == [
        "otelstream: a bound of 3 was reached",
        "otelstream: a bound of 3 was reached (1 more not logged)",
    ]


def test_the_console_line_names_otelstream_once() -> None:
    record = logging.LogRecord(
        "otelstream._server.shutdown", logging.INFO, __file__, 1, "otelstream: %s", ("bye",), None
    )
    line = ConsoleFallback().format(record)
    assert line == "INFO:     otelstream._server.shutdown: bye"
    assert record.getMessage() == "otelstream: bye"  # the app's own handlers see it whole


def test_a_503_says_the_fault_then_when_to_ask_again_in_one_sentence() -> None:
    fault = HubUnavailable("Redis cannot be reached: Error 111 connecting. Connection refused.", 3)
    assert fault.advice() == (
        "Redis cannot be reached: Error 111 connecting. Connection refused; retry in 3 s"
    )
