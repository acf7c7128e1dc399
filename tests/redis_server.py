"""The Redis tests' servers, written once: one redis-server and one Redis Cluster a module.

`redis` and `redis_cluster` are module fixtures (every test module gets them through
conftest.py); `empty_redis` and `empty_redis_cluster` are the same servers emptied for one test,
and started again first when a test before it killed them. Missing redis-server (or redis-py)
fails the tests when `CI` is set and skips them otherwise.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from otelstream.testing import RedisClusterServers, RedisServer


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


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    """One real redis-server for a module's tests."""
    yield from redis_server()


@pytest.fixture
def empty_redis(redis: RedisServer) -> RedisServer:
    """The module's redis-server, running and empty."""
    if redis.process is None:  # a test before this one killed it
        redis.start()
    redis.command("FLUSHALL")
    return redis


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """One real three-master Redis Cluster for a module's tests."""
    servers = RedisClusterServers(executable=require_redis())
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def empty_redis_cluster(redis_cluster: RedisClusterServers) -> RedisClusterServers:
    """The module's cluster, emptied."""
    for node in redis_cluster.nodes:
        node.command("FLUSHALL")
    return redis_cluster


__all__ = [
    "RedisServer",
    "empty_redis",
    "empty_redis_cluster",
    "redis",
    "redis_cluster",
    "redis_server",
    "require_redis",
]
