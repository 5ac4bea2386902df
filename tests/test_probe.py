"""``python -m agent.probe``: the compose healthchecks' probe, against servers on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from agent.probe import main, probe


class _Status(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(int(self.path.strip("/")))
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("path", "healthy"),
    [("/200", True), ("/204", True), ("/503", False), ("/404", False)],
    ids=["200", "204", "503", "404"],
)
def test_http_probe_is_healthy_only_on_2xx(http_port: int, path: str, healthy: bool) -> None:
    problem = probe(f"http://127.0.0.1:{http_port}{path}", 2.0)
    assert (problem is None) == healthy, problem
    assert main([f"http://127.0.0.1:{http_port}{path}"]) == (0 if healthy else 1)


def test_tcp_probe_is_healthy_when_the_port_accepts(http_port: int) -> None:
    assert probe(f"tcp://127.0.0.1:{http_port}", 2.0) is None


def test_tcp_probe_says_why_when_nothing_listens() -> None:
    port = _closed_port()
    problem = probe(f"tcp://127.0.0.1:{port}", 2.0)
    assert problem is not None and problem.startswith(f"tcp://127.0.0.1:{port}: ")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://127.0.0.1/", "url: an http:// or tcp:// URL, got 'https://127.0.0.1/'"),
        ("tcp://127.0.0.1", "url: tcp://host:port, got 'tcp://127.0.0.1'"),
        ("tcp://:9000", "url: tcp://host:port, got 'tcp://:9000'"),
    ],
    ids=["https", "tcp-without-port", "tcp-without-host"],
)
def test_bad_urls_are_refused_saying_what_is_expected(url: str, problem: str) -> None:
    assert probe(url, 1.0) == problem
