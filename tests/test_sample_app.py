"""The sample app over real HTTP on 127.0.0.x: what it answers, what it counts, and that it runs as a process."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from e2e.sample_app import SampleApp


def _address() -> str:
    return f"127.0.0.{random.randint(100, 250)}"


@pytest.fixture
async def app() -> AsyncIterator[SampleApp]:
    async with SampleApp(service="reviews", version="v2", address=_address(), port=0) as sample:
        yield sample


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def _get(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async with http.get(url, headers=headers) as response:
        return response.status, json.loads(await response.text())


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 200),
        ("/productpage?u=normal", 200),
        ("/headers", 200),
        ("/status/418", 418),
        ("/status/503", 503),
        ("/status/200", 200),
        ("/delay/0", 200),
    ],
    ids=["root", "any-path-with-query", "headers", "status-418", "status-503", "status-200", "delay-0"],
)
async def test_answers_with_who_served(app: SampleApp, http: aiohttp.ClientSession, path: str, status: int) -> None:
    got_status, body = await _get(http, app.url + path)

    assert got_status == status
    assert body["service"] == "reviews"
    assert body["version"] == "v2"
    assert body["workload"] == "reviews-v2"
    assert body["path"] == path
    assert body["method"] == "GET"


async def test_status_out_of_range_is_a_bad_request(app: SampleApp, http: aiohttp.ClientSession) -> None:
    status, body = await _get(http, app.url + "/status/999")

    assert status == 400
    assert "999" in body["error"]


async def test_echoes_request_headers_lower_cased(app: SampleApp, http: aiohttp.ClientSession) -> None:
    status, body = await _get(http, app.url + "/headers", headers={"End-User": "jason", "X-Request-Id": "abc"})

    assert status == 200
    assert body["headers"]["end-user"] == "jason"
    assert body["headers"]["x-request-id"] == "abc"


async def test_flaky_fails_once_per_key(app: SampleApp, http: aiohttp.ClientSession) -> None:
    first, _ = await _get(http, app.url + "/flaky/a")
    second, _ = await _get(http, app.url + "/flaky/a")
    other_key, _ = await _get(http, app.url + "/flaky/b")

    assert (first, second, other_key) == (503, 200, 503)
    assert app.requests_by_path["/flaky/a"] == 2
    assert app.requests_by_path["/flaky/b"] == 1


async def test_delay_sleeps_then_answers(app: SampleApp, http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    status, body = await _get(http, app.url + "/delay/300")

    assert status == 200
    assert time.monotonic() - started >= 0.3
    assert body["path"] == "/delay/300"


async def test_counts_every_request_and_resets(app: SampleApp, http: aiohttp.ClientSession) -> None:
    for path in ("/", "/", "/status/500", "/flaky/k"):
        await _get(http, app.url + path)

    assert app.requests_total == 4
    assert app.requests_by_path == {"/": 2, "/status/500": 1, "/flaky/k": 1}

    app.reset_counts()
    status, _ = await _get(http, app.url + "/flaky/k")
    assert app.requests_total == 1
    assert status == 503  # reset forgets flaky keys too


async def test_many_instances_in_one_loop_each_on_its_own_address(http: aiohttp.ClientSession) -> None:
    apps = [SampleApp(service="reviews", version=f"v{n}", address=f"127.0.0.{80 + n}", port=0) for n in (1, 2, 3)]
    for sample in apps:
        await sample.start()
    try:
        versions = [(await _get(http, sample.url))[1]["version"] for sample in apps]
    finally:
        for sample in apps:
            await sample.stop()

    assert versions == ["v1", "v2", "v3"]
    assert [sample.requests_total for sample in apps] == [1, 1, 1]


async def test_runs_as_a_process_and_stops_on_sigterm(http: aiohttp.ClientSession) -> None:
    address, port = _address(), random.randint(20000, 30000)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "e2e.sample_app", "--service", "ratings", "--version", "v9"),
        *("--address", address, "--port", str(port)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        banner = await asyncio.wait_for(process.stdout.readline(), 15)
        assert f"http://{address}:{port}" in banner.decode()
        status, body = await _get(http, f"http://{address}:{port}/x")
        assert (status, body["service"], body["version"], body["workload"]) == (200, "ratings", "v9", "ratings-v9")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
