"""A small asyncio Redis client (RESP2 over one TCP connection, pipelined): what Mixer's shared quota store needs.

Mixer sends one short command per rate-limited check (a Lua script's ``EVALSHA``), so one connection carrying
every command in order, each caller awaiting its own reply (replies come back in the order the commands were
written), keeps a check to one round trip without a pool or a dependency. A connection that fails fails the
commands in flight (``RedisError``) and the next command connects again: a Redis restart costs the checks of that
moment, never a stuck Mixer.

``redis://[:password@]host[:port][/db]`` URLs are understood (``AUTH`` and ``SELECT`` on connect).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["ErrorReply", "RedisAddress", "RedisClient", "RedisError", "Reply", "parse_redis_url"]

DEFAULT_PORT = 6379


class RedisError(Exception):
    """Redis answered an error, or the connection failed."""


class ErrorReply(RedisError):
    """An error reply (``-ERR ...``): read as a value, so that the replies after it stay in step."""


Reply = int | bytes | str | list["Reply"] | ErrorReply | None


@dataclass(frozen=True, slots=True)
class RedisAddress:
    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    password: str = ""

    def __str__(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


def parse_redis_url(url: str) -> RedisAddress:
    """``redis://[:password@]host[:port][/db]``; ValueError with the reason for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise ValueError(f"expected redis://host[:port][/db], got {url!r}")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database of {url!r} must be a number, got {path!r}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}: {exc}") from None
    return RedisAddress(parts.hostname, port, int(path or 0), unquote(parts.password or ""))


def encode_command(*args: str | bytes | int) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    """One RESP2 reply, read whole (an error reply, also inside an array, is an ``ErrorReply`` value); RedisError
    only for bytes that are not RESP (the connection is then out of step and must be dropped)."""
    line = await reader.readuntil(b"\r\n")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        return ErrorReply(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        length = int(body)
        if length < 0:
            return None
        data = await reader.readexactly(length + 2)
        return data[:-2]
    if kind == b"*":
        count = int(body)
        if count < 0:
            return None
        return [await read_reply(reader) for _ in range(count)]
    raise RedisError(f"unexpected reply from Redis: {line[:60]!r}")


class RedisClient:
    """Commands over one pipelined connection, opened on first use and again after a failure."""

    def __init__(self, address: RedisAddress, *, timeout: float = 2.0) -> None:
        self.address = address
        self.timeout = timeout
        self._writer: asyncio.StreamWriter | None = None
        self._waiting: deque[asyncio.Future[Reply]] = deque()
        self._reader_task: asyncio.Task[None] | None = None
        self._connecting: asyncio.Lock | None = None

    async def call(self, *args: str | bytes | int) -> Reply:
        """Send one command and wait for its reply (``RedisError`` on an error reply, a failure or a timeout)."""
        writer, waiting = await self._connection()
        reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        waiting.append(reply)
        writer.write(encode_command(*args))
        try:
            return await asyncio.wait_for(asyncio.shield(reply), self.timeout)
        except TimeoutError:
            error = RedisError(f"{self.address}: no reply within {self.timeout:g}s")
            self._lost(writer, error)
            raise error from None

    async def close(self) -> None:
        if self._writer is not None:
            self._lost(self._writer, RedisError("the client is closed"))
        task, self._reader_task = self._reader_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _connection(self) -> tuple[asyncio.StreamWriter, deque[asyncio.Future[Reply]]]:
        """The open connection and its commands awaiting replies (in the order they were written)."""
        if self._writer is not None:
            return self._writer, self._waiting
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is not None:
                return self._writer, self._waiting
            address = self.address
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(address.host, address.port), self.timeout
                )
                for command in self._handshake():
                    writer.write(encode_command(*command))
                    answer = await asyncio.wait_for(read_reply(reader), self.timeout)
                    if isinstance(answer, ErrorReply):
                        writer.close()
                        raise RedisError(f"{address}: {command[0]} refused: {answer}")
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                raise RedisError(f"{address}: cannot connect: {exc or type(exc).__name__}") from None
            self._writer, self._waiting = writer, deque()
            self._reader_task = asyncio.get_running_loop().create_task(
                self._read(reader, writer, self._waiting), name="redis-replies"
            )
            return writer, self._waiting

    def _handshake(self) -> list[tuple[str | int, ...]]:
        commands: list[tuple[str | int, ...]] = []
        if self.address.password:
            commands.append(("AUTH", self.address.password))
        if self.address.db:
            commands.append(("SELECT", self.address.db))
        return commands

    async def _read(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, waiting: deque[asyncio.Future[Reply]]
    ) -> None:
        try:
            while True:
                reply = await read_reply(reader)
                if not waiting:
                    raise RedisError("a reply nobody asked for")
                waiter = waiting.popleft()
                if waiter.done():
                    continue
                if isinstance(reply, ErrorReply):
                    waiter.set_exception(reply)
                else:
                    waiter.set_result(reply)
        except (OSError, asyncio.IncompleteReadError, RedisError) as exc:
            self._lost(writer, RedisError(f"{self.address}: connection lost: {exc or type(exc).__name__}"))

    def _lost(self, writer: asyncio.StreamWriter, error: RedisError) -> None:
        """Fail the commands in flight on ``writer``'s connection and drop it, if it is still the client's (the
        next command opens a new one)."""
        if writer is not self._writer:
            return
        self._writer = None
        writer.close()
        waiting, self._waiting = self._waiting, deque()
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_exception(error)
