"""A real Redis server for the tests of Mixer's shared quota store (``bench._redis_server``), stopped after the test;
skipped, saying why, where Debian's redis-server is not installed (``make test`` installs it as root)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._redis_server import RedisServerProcess, redis_server_missing

__all__ = ["redis_server"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServerProcess]:
    if (missing := redis_server_missing()) is not None:
        pytest.skip(missing)
    server = RedisServerProcess(tmp_path)
    try:
        yield server
    finally:
        server.stop()
