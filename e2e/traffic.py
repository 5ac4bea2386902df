"""Requests through a workload's sidecar, the way a meshed app sends them: ``HTTP_PROXY=http://<addr>:15001``.

``SidecarClient`` holds one aiohttp session per client workload, with its source address bound to the
workload's own address (so the sidecar and the peer see the right client), and proxies every request through
the sidecar's outbound HTTP-proxy listener, which routes by the Host header (the URL's host).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

__all__ = ["MeshResponse", "SidecarClient", "app_body", "binomial_bounds", "count_by"]

# The loopback model's HTTP-proxy port, which Pilot no longer builds: SidecarClient is only e2e.harness's, and goes
# with it.
HTTP_PROXY_PORT = 15001


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshResponse:
    """A response as the client app saw it. ``body`` is the sample app's JSON when a sample app answered, else
    None (e.g. Envoy's own ``no healthy upstream`` 503); ``text`` is the raw body."""

    status: int
    headers: Mapping[str, str]
    text: str
    body: Mapping[str, Any] | None

    @property
    def version(self) -> str | None:
        """The version of the sample app that answered, if one did."""
        value = self.body.get("version") if self.body is not None else None
        return value if isinstance(value, str) else None

    @property
    def workload(self) -> str | None:
        value = self.body.get("workload") if self.body is not None else None
        return value if isinstance(value, str) else None

    @property
    def request_headers(self) -> Mapping[str, str]:
        """The headers the sample app received (lower-case names)."""
        value = self.body.get("headers") if self.body is not None else None
        return value if isinstance(value, dict) else {}


def app_body(text: str) -> Mapping[str, Any] | None:
    """The sample app's JSON answer in ``text``; None when no sample app answered."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "service" in value else None


def count_by(responses: Iterable[MeshResponse], field: str = "version") -> Counter[str]:
    """How many responses each ``field`` value of the sample app got; responses no sample app answered are
    counted under ``HTTP <status>``."""
    counts: Counter[str] = Counter()
    for response in responses:
        value = response.body.get(field) if response.body is not None else None
        counts[str(value) if value is not None else f"HTTP {response.status}"] += 1
    return counts


def binomial_bounds(n: int, p: float, sigmas: float = 4.5) -> tuple[float, float]:
    """Counts outside mean +- 4.5 standard deviations happen by chance about once in 150,000 runs."""
    mean, deviation = n * p, math.sqrt(n * p * (1 - p))
    return mean - sigmas * deviation, mean + sigmas * deviation


class SidecarClient:
    """HTTP through one workload's sidecar. Close it (``await client.close()``) when done."""

    def __init__(self, *, address: str, proxy_port: int = HTTP_PROXY_PORT, timeout: float = 10.0) -> None:
        self.address = address
        self.proxy_url = f"http://{address}:{proxy_port}"
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(local_addr=(self.address, 0), limit=64, force_close=False)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self._timeout), auto_decompress=True
            )
        return self._session

    async def request(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> MeshResponse:
        """One request through the sidecar. Transport errors (sidecar not listening, ...) raise ``aiohttp``'s
        exceptions; HTTP errors (including Envoy's own 503/404) are returned as responses. Redirects are returned,
        not followed, unless ``allow_redirects``: a test sees what the mesh answered."""
        session = self._get_session()
        request_timeout = aiohttp.ClientTimeout(total=timeout) if timeout is not None else None
        async with session.request(
            method,
            url,
            headers=dict(headers or {}),
            proxy=self.proxy_url,
            timeout=request_timeout,
            allow_redirects=allow_redirects,
        ) as response:
            text = await response.text(errors="replace")
            return MeshResponse(
                status=response.status,
                headers={name.lower(): value for name, value in response.headers.items()},
                text=text,
                body=app_body(text),
            )

    async def send_many(
        self,
        url: str,
        count: int,
        *,
        concurrency: int = 8,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> list[MeshResponse]:
        """``count`` requests with at most ``concurrency`` in flight; responses in request order."""
        if count < 0 or concurrency < 1:
            raise ValueError(f"count must be >= 0 and concurrency >= 1, got count={count} concurrency={concurrency}")
        gate = asyncio.Semaphore(concurrency)

        async def one() -> MeshResponse:
            async with gate:
                return await self.request(url, method=method, headers=headers, timeout=timeout)

        try:
            async with asyncio.TaskGroup() as group:  # one failure cancels the rest instead of leaking them
                tasks = [group.create_task(one()) for _ in range(count)]
        except ExceptionGroup as failures:
            first = failures.exceptions[0]
            first.add_note(f"({len(failures.exceptions)} of {count} requests to {url} failed)")
            raise first from None
        return [task.result() for task in tasks]

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
