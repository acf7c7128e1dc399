"""The Redis tests' server (`otelstream.testing.RedisServer`): a test may kill and restart it.

Missing redis-server (or redis-py) fails the tests when `CI` is set and skips them otherwise.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from otelstream.testing import RedisServer


def require_redis() -> str:
    """The redis-server executable; fails (under CI) or skips when it or redis-py is missing."""
    problem = None
    executable = shutil.which("redis-server")
    if executable is None:
        problem = "redis-server is not installed (apt-get install -y redis-server)"
    else:
        try:
            import redis  # noqa: F401
        except ImportError:
            problem = "redis-py is not installed (the `redis` extra of otelstream)"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the Redis tests need a Redis: {problem}", pytrace=False)
        pytest.skip(problem)
    assert executable is not None
    return executable


def redis_server() -> Iterator[RedisServer]:
    """For a fixture: a started server, killed at the end."""
    server = RedisServer(require_redis())
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["RedisServer", "redis_server", "require_redis"]
