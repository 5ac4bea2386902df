"""A real Redis server for the tests of Mixer's shared quota store: Debian's ``redis-server`` on a free loopback
port, no persistence, stopped after the test. Skipped, saying why, where it is not installed (``make test``
installs it as root: ``make system-packages``)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench._measure import free_port
from mixer.redis_client import RedisAddress

__all__ = ["RedisServer", "redis_server"]


@dataclass
class RedisServer:
    address: RedisAddress
    process: subprocess.Popen[bytes]
    directory: Path

    def restart(self) -> None:
        """Stop the server and start it again on the same port, empty (as a Redis restart without persistence)."""
        self.process.terminate()
        self.process.wait(10)
        self.process = _start(self.address.port, self.directory)


def _start(port: int, directory: Path) -> subprocess.Popen[bytes]:
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += ["--dir", str(directory)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"redis-server did not answer PING on port {port} within 10 s")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian's redis-server; make system-packages installs it as root)")
    port = free_port()
    server = RedisServer(RedisAddress("127.0.0.1", port), _start(port, tmp_path), tmp_path)
    try:
        yield server
    finally:
        server.process.terminate()
        server.process.wait(10)
