"""The open-loop load generator of the Mixer benchmark's part 1, run inside the client pod as its app would run
(``meshplane pod exec``: the app's uid, the pod's DNS, no proxy settings): an unmodified HTTP/1.1 client whose
connections the pod's iptables rules hand to its sidecar.

Standard library only, Python 3.11: it runs under ``/usr/bin/python3`` as the app's uid, which may read neither
the venv nor the checkout, so ``bench._mixer_envoy`` hands this file's text to ``python3 -c`` (as
``e2e.pods.app_server_command`` does for the apps).

The plan is one JSON argument: ``url`` (``http://reviews:9080/...``), ``rate`` (requests/s, all variants),
``warmup`` and ``seconds``, ``variants`` (each sent with header ``x-bench: <variant>``), ``headers`` (sent with
every request) and ``timeout`` (seconds per request). The host name is resolved once, by the pod's DNS, as a client
caching its lookups would; each request carries ``Host: <host>:<port>``. Requests are open loop: request ``i`` is
sent at ``start + i / rate`` whether or not earlier ones were answered, the variants interleaved (a shuffled order
in every round), each variant on keep-alive connections of its own (a new one when all are busy). Latency is from
the send to the last byte of the body; the lag of each send behind its schedule is reported (the client's health).

Protocol on stdin/stdout, one JSON object a line: after the warm-up it prints ``{"warm": true, "address": ...}``
and waits for a line on stdin (the host takes its "before" readings), then measures and prints
``{"answers": [[variant, status, seconds], ...], "lags": [...], "cpu": seconds}`` (``status``: the HTTP status, or
the name of the error that ended the request) and exits.

    python3 bench/_pod_load.py '{"url": "http://reviews:9080/", "rate": 150, ...}'
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

__all__ = ["main"]

_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class _Pool:
    """The keep-alive connections of one variant: idle ones are reused, a new one is opened when none is idle."""

    address: tuple[str, int]
    idle: list[_Connection] = field(default_factory=list)

    async def take(self) -> _Connection:
        while self.idle:
            reader, writer = self.idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return await asyncio.open_connection(*self.address)

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF (the last chunk: an empty line)
            if size == 0:
                return
    await reader.readexactly(int(headers.get("content-length", "0")))


async def _exchange(connection: _Connection, request: bytes) -> tuple[str, bool]:
    """The status of one request/response on ``connection``; whether the connection can be reused."""
    reader, writer = connection
    writer.write(request)
    await writer.drain()
    status_line = (await reader.readuntil(b"\r\n")).decode("latin-1").split()
    headers: dict[str, str] = {}
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    await _read_body(reader, headers)
    return status_line[1], headers.get("connection", "").lower() != "close"


async def _send(pool: _Pool, request: bytes, timeout: float) -> tuple[str, float]:
    started = time.perf_counter()
    connection: _Connection | None = None
    try:
        async with asyncio.timeout(timeout):
            connection = await pool.take()
            status, reusable = await _exchange(connection, request)
        if reusable:
            pool.idle.append(connection)
        else:
            connection[1].close()
    except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError) as e:
        status = type(e).__name__
        if connection is not None:
            connection[1].close()
    return status, time.perf_counter() - started


def _order(variants: list[str], total: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    order: list[str] = []
    while len(order) < total:
        round_ = list(variants)
        rng.shuffle(round_)
        order += round_
    return order[:total]


async def _open_loop(
    pools: dict[str, _Pool], requests: dict[str, bytes], *, rate: float, seconds: float, seed: int, timeout: float
) -> tuple[list[list[Any]], list[float]]:
    """``rate * seconds`` requests at fixed intervals; ``[variant, status, latency]`` each and the send lags."""
    order = _order(list(pools), max(len(pools), round(rate * seconds)), seed)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    lags: list[float] = []
    tasks: list[asyncio.Task[tuple[str, float]]] = []
    for i, variant in enumerate(order):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(max(0.0, loop.time() - due))
        tasks.append(asyncio.create_task(_send(pools[variant], requests[variant], timeout)))
    answers = await asyncio.gather(*tasks)
    return [[variant, status, latency] for variant, (status, latency) in zip(order, answers, strict=True)], lags


def _request(url: urllib.parse.SplitResult, headers: dict[str, str]) -> bytes:
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    lines = [f"GET {path} HTTP/1.1", f"Host: {url.netloc}", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _emit(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


async def run(plan: dict[str, Any]) -> None:
    url = urllib.parse.urlsplit(plan["url"])
    if url.scheme != "http" or url.hostname is None:
        raise ValueError(f"url: an http:// URL with a host, got {plan['url']!r}")
    port = url.port or 80
    loop = asyncio.get_running_loop()
    found = await loop.getaddrinfo(url.hostname, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
    address = (str(found[0][4][0]), port)
    variants: list[str] = plan["variants"]
    pools = {variant: _Pool(address) for variant in variants}
    requests = {variant: _request(url, {**plan["headers"], "x-bench": variant}) for variant in variants}
    options = {"rate": float(plan["rate"]), "timeout": float(plan["timeout"])}
    try:
        if plan["warmup"] > 0:
            await _open_loop(pools, requests, seconds=float(plan["warmup"]), seed=1, **options)
        _emit({"warm": True, "address": address[0]})
        await loop.run_in_executor(None, sys.stdin.readline)
        cpu_before = time.process_time()
        answers, lags = await _open_loop(pools, requests, seconds=float(plan["seconds"]), seed=2, **options)
        _emit({"answers": answers, "lags": lags, "cpu": time.process_time() - cpu_before})
    finally:
        for pool in pools.values():
            pool.close()


def main(argv: list[str]) -> int:
    asyncio.run(run(json.loads(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
