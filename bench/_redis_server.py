"""Debian's ``redis-server`` on a free loopback port, without persistence: the shared quota store of the Mixer
benchmark (``bench.mixer_policy``) and of the tests (``tests/redis_server.py``)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from bench._measure import free_port
from mixer.redis_client import RedisAddress

__all__ = ["RedisServerProcess", "redis_server_missing"]


def redis_server_missing() -> str | None:
    """Why no Redis server can be started here; None when one can."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (Debian's redis-server; make system-packages installs it as root)"
    return None


class RedisServerProcess:
    """``redis-server`` on ``127.0.0.1:<free port>``, its files in ``directory``; ``stop()`` when done."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.address = RedisAddress("127.0.0.1", port or free_port())
        self.process = self._start()

    @property
    def url(self) -> str:
        return f"redis://{self.address.host}:{self.address.port}/0"

    @property
    def pid(self) -> int:
        return self.process.pid

    def restart(self) -> None:
        """Stop the server and start it again on the same port, empty (a Redis restart without persistence)."""
        self.stop()
        self.process = self._start()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _start(self) -> subprocess.Popen[bytes]:
        port = self.address.port
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.directory)]
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
        process.wait()
        raise RuntimeError(f"redis-server did not answer PING on port {port} within 10 s")
