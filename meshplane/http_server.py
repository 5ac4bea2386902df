"""A minimal HTTP/1.1 server on asyncio streams, for the monitoring endpoints (``http_endpoints``).

The monitor answers a handful of GET routes with small bodies (``/ready``, ``/metrics``, ``/debug/...``): this
reads one request head at a time (request line and headers, at most ``MAX_HEAD_BYTES``; a body announced with
``Content-Length`` up to ``MAX_BODY_BYTES`` is read and ignored), calls the route's handler and writes the whole
response with its ``Content-Length``. Connections are kept alive (HTTP/1.1) until the client closes them, says
``Connection: close``, speaks HTTP/1.0, or stays idle for ``IDLE_SECONDS``. Chunked request bodies, upgrades and
methods other than GET/HEAD are refused with the usual status codes. It exists because a web framework's import
costs a tenth of a second of every control plane's start (aiohttp's ``web`` loads its client and TLS contexts too).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote, urlsplit

import structlog

__all__ = ["IDLE_SECONDS", "MAX_BODY_BYTES", "MAX_HEAD_BYTES", "Handler", "HttpRequest", "HttpResponse", "HttpServer"]

log = structlog.get_logger(__name__)

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
IDLE_SECONDS = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    method: str
    path: str  # percent-decoded, without the query
    query: Mapping[str, str] = field(default_factory=dict)  # the first value of each parameter
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-cased


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpResponse:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpServer:
    """Serves GET (and HEAD) ``routes`` by exact path on ``host:port`` (port 0: any free port, see ``port``)."""

    def __init__(self, host: str, port: int, routes: Mapping[str, Handler]) -> None:
        self.host = host
        self.port = port
        self._routes = dict(routes)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=MAX_HEAD_BYTES)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close every connection (a request being answered is cancelled)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away (or idled out): nothing to answer
        except asyncio.CancelledError:
            if self._server is not None:  # cancelled by something else than stop(): let it propagate
                raise
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is to be closed."""
        try:
            async with asyncio.timeout(IDLE_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            await _write(writer, "GET", _error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE), keep_alive=False)
            return False
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                await _write(writer, "GET", _error(HTTPStatus.BAD_REQUEST, "incomplete request"), keep_alive=False)
            return False
        try:
            request, keep_alive = _parse_head(head)
            await _skip_body(reader, request.headers)
        except _BadRequest as exc:
            await _write(writer, "GET", _error(exc.status, str(exc)), keep_alive=False)
            return False
        response = await self._respond(request)
        await _write(writer, request.method, response, keep_alive=keep_alive)
        return keep_alive

    async def _respond(self, request: HttpRequest) -> HttpResponse:
        handler = self._routes.get(request.path)
        if handler is None:
            return _error(HTTPStatus.NOT_FOUND, f"no route {request.path}")
        if request.method not in ("GET", "HEAD"):
            return _error(HTTPStatus.METHOD_NOT_ALLOWED, headers={"Allow": "GET, HEAD"})
        try:
            return await handler(request)
        except Exception:
            log.exception("monitor handler failed", path=request.path)
            return _error(HTTPStatus.INTERNAL_SERVER_ERROR)


def _parse_head(head: bytes) -> tuple[HttpRequest, bool]:
    """The request, and whether the connection stays open after the response."""
    request_line, *header_lines = head.decode("latin-1")[:-4].split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, f"bad request line {request_line[:100]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"bad header line {line[:100]!r}")
        headers[name.lower()] = value.strip()
    split = urlsplit(target)
    query: dict[str, str] = {}
    for key, value in parse_qsl(split.query, keep_blank_values=True):
        query.setdefault(key, value)
    connection = headers.get("connection", "").lower()
    keep_alive = version == "HTTP/1.1" and "close" not in connection
    request = HttpRequest(method=method, path=unquote(split.path), query=query, headers=headers)
    return request, keep_alive


async def _skip_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> None:
    if "transfer-encoding" in headers:
        raise _BadRequest(HTTPStatus.NOT_IMPLEMENTED, "chunked request bodies are not supported")
    length = headers.get("content-length", "0")
    if not length.isdigit():
        raise _BadRequest(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length[:20]!r}")
    if int(length) > MAX_BODY_BYTES:
        raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body over {MAX_BODY_BYTES} bytes")
    if int(length):
        await reader.readexactly(int(length))


def _error(status: HTTPStatus, message: str = "", headers: Mapping[str, str] | None = None) -> HttpResponse:
    body = f"{status.value} {status.phrase}" + (f": {message}" if message else "") + "\n"
    return HttpResponse(body=body.encode("utf-8"), status=status.value, headers=dict(headers or {}))


async def _write(writer: asyncio.StreamWriter, method: str, response: HttpResponse, *, keep_alive: bool) -> None:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        *(f"{name}: {value}" for name, value in response.headers.items()),
    ]
    if not keep_alive:
        lines.append("Connection: close")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if method != "HEAD":
        writer.write(response.body)
    await writer.drain()
