"""The monitor's HTTP/1.1 server over raw sockets: routing, methods, keep-alive and refused requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from meshplane.http_server import MAX_HEAD_BYTES, HttpRequest, HttpResponse, HttpServer


async def _echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(body=f"{request.method} {request.path} {dict(request.query)}".encode())


async def _broken(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("handler bug")


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    http = HttpServer("127.0.0.1", 0, {"/echo": _echo, "/a b": _echo, "/broken": _broken})
    await http.start()
    try:
        yield http
    finally:
        await http.stop()


async def _exchange(server: HttpServer, raw: bytes) -> bytes:
    """Send ``raw`` and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(raw)
        writer.write_eof()
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


def _get(target: str, *headers: str, version: str = "HTTP/1.1") -> bytes:
    return "\r\n".join([f"GET {target} {version}", "Host: x", *headers, "", ""]).encode()


@pytest.mark.parametrize(
    ("raw", "status_line", "body"),
    [
        (
            _get("/echo?proxy=a%7Eb&proxy=second&empty=", "Connection: close"),
            "HTTP/1.1 200 OK",
            b"GET /echo {'proxy': 'a~b', 'empty': ''}",
        ),
        (_get("/a%20b", "Connection: close"), "HTTP/1.1 200 OK", b"GET /a b {}"),
        (_get("/echo", version="HTTP/1.0"), "HTTP/1.1 200 OK", b"GET /echo {}"),
        (_get("/nowhere", "Connection: close"), "HTTP/1.1 404 Not Found", b"404 Not Found: no route /nowhere\n"),
        (
            b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
            "HTTP/1.1 405 Method Not Allowed",
            b"405 Method Not Allowed\n",
        ),
        (b"HEAD /echo HTTP/1.1\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 OK", b""),
        (_get("/broken", "Connection: close"), "HTTP/1.1 500 Internal Server Error", b"500 Internal Server Error\n"),
        (b"GET /echo\r\n\r\n", "HTTP/1.1 400 Bad Request", b"400 Bad Request: bad request line 'GET /echo'\n"),
        (_get("/echo", "no-colon"), "HTTP/1.1 400 Bad Request", b"400 Bad Request: bad header line 'no-colon'\n"),
        (
            _get("/echo", "Transfer-Encoding: chunked"),
            "HTTP/1.1 501 Not Implemented",
            b"501 Not Implemented: chunked request bodies are not supported\n",
        ),
        (
            _get("/echo", "Content-Length: 9999999"),
            "HTTP/1.1 413 Request Entity Too Large",
            b"413 Request Entity Too Large: request body over 1048576 bytes\n",
        ),
        (
            _get("/echo", "X-Big: " + "a" * MAX_HEAD_BYTES),
            "HTTP/1.1 431 Request Header Fields Too Large",
            b"431 Request Header Fields Too Large\n",
        ),
        (b"GET /echo HTTP/1.1\r\nHost: x\r\n", "HTTP/1.1 400 Bad Request", b"400 Bad Request: incomplete request\n"),
    ],
    ids=[
        "query-first-value-decoded",
        "path-decoded",
        "http10-closes",
        "unknown-path",
        "post-refused",
        "head-without-body",
        "handler-error",
        "bad-request-line",
        "bad-header",
        "chunked-body",
        "body-too-large",
        "head-too-large",
        "incomplete-head",
    ],
)
async def test_answers(server: HttpServer, raw: bytes, status_line: str, body: bytes) -> None:
    response = await _exchange(server, raw)
    head, _, rest = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == status_line
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert rest == body
    assert headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == (len(body) if not raw.startswith(b"HEAD") else len(b"HEAD /echo {}"))
    if status_line.startswith("HTTP/1.1 405"):
        assert headers["Allow"] == "GET, HEAD"


async def test_keeps_the_connection_alive_between_requests(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for query in ("a=1", "a=2"):
            writer.write(_get(f"/echo?{query}"))
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" not in head
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                assert await reader.readexactly(length) == f"GET /echo {{'a': '{query[-1]}'}}".encode()
    finally:
        writer.close()


async def test_stop_closes_idle_connections(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(_get("/echo"))
        async with asyncio.timeout(5):
            await reader.readuntil(b"\r\n\r\n")
            await server.stop()
            assert await reader.read() == b"GET /echo {}"  # the rest of the body, then the end of the stream
    finally:
        writer.close()
