"""`otelstream run` while the server's Redis is down: it says it is retrying (on stderr, a line
each wait) instead of waiting in silence, and once Redis is back the run starts and streams
whole. A real redis-server, killed and started again; the app in a uvicorn process."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, app_subprocess
from tests.redis_server import RedisServer, redis_server

APP = "tests.apps.redis_example:app"


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    yield from redis_server()


@pytest.mark.timeout(90)
def test_run_says_it_is_retrying_while_redis_is_down(redis: RedisServer) -> None:
    with app_subprocess(APP, OTELSTREAM_HUB=redis.url) as (url, _process):
        redis.kill()
        with subprocess.Popen(
            [sys.executable, "-m", "otelstream", "run", url, "example", "-p", "seconds=0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            try:
                assert process.stderr is not None
                told = process.stderr.readline()  # waits until the first wait is said
                redis.start()
                out, rest = process.communicate(timeout=60)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.communicate()
        assert process.returncode == 0, (out, told, rest)
    assert re.fullmatch(
        r"otelstream: POST /runs: the server answered 503: .+; retrying in [\d.]+ s \(1 of 5\)\n",
        told,
    ), told
    assert all("retrying in" in line for line in rest.splitlines()), rest
    assert out.splitlines()[0].startswith("started run ")
    assert re.fullmatch(r"run [0-9a-f]{32} done in [\d.]+ m?s", out.splitlines()[-1]), out
