"""A tiny HTTP service that says who answered: the workload behind a sidecar in every e2e scenario and the demo.

Every response is JSON ``{"service", "version", "workload", "path", "method", "headers"}`` so a test can tell
which version served a request and what headers reached it. Endpoints:

- ``/status/<code>``: answers with that status code;
- ``/delay/<ms>``: sleeps, then 200;
- ``/flaky/<key>``: 503 the first time this instance sees ``key``, 200 afterwards (proves retries);
- ``/headers``: 200 (the request headers are in every response anyway);
- anything else: 200.

Many instances run in one event loop (``async with SampleApp(...)``), each on its own address, or one per process:
``python -m e2e.sample_app --service reviews --version v1 --address 127.0.0.21 --port 19080``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = ["MAX_DELAY_MS", "SampleApp", "main"]

MAX_DELAY_MS = 60_000


class SampleApp:
    """One sample service instance bound to ``address:port`` (port 0: any free port, then ``port`` is set to it);
    counts what it receives."""

    def __init__(self, *, service: str, version: str, address: str, port: int, workload: str | None = None) -> None:
        self.service = service
        self.version = version
        self.address = address
        self.port = port
        self.workload = workload or f"{service}-{version}"
        self.requests_total = 0
        self.requests_by_path: Counter[str] = Counter()
        self._flaky_seen: set[str] = set()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def _body(self, request: web.Request) -> dict[str, object]:
        return {
            "service": self.service,
            "version": self.version,
            "workload": self.workload,
            "path": request.path_qs,
            "method": request.method,
            "headers": {name.lower(): ", ".join(request.headers.getall(name)) for name in request.headers},
        }

    def _reply(self, request: web.Request, status: int = 200) -> web.Response:
        return web.json_response(self._body(request), status=status)

    async def _status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        if not 200 <= code <= 599:
            return web.json_response({**self._body(request), "error": f"status {code} out of 200-599"}, status=400)
        return self._reply(request, code)

    async def _delay(self, request: web.Request) -> web.Response:
        milliseconds = int(request.match_info["ms"])
        if milliseconds > MAX_DELAY_MS:
            return web.json_response({**self._body(request), "error": f"delay over {MAX_DELAY_MS} ms"}, status=400)
        await asyncio.sleep(milliseconds / 1000)
        return self._reply(request)

    async def _flaky(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key in self._flaky_seen:
            return self._reply(request)
        self._flaky_seen.add(key)
        return self._reply(request, 503)

    async def _any(self, request: web.Request) -> web.Response:
        return self._reply(request)

    def reset_counts(self) -> None:
        self.requests_total = 0
        self.requests_by_path.clear()
        self._flaky_seen.clear()

    def build_app(self) -> web.Application:
        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.requests_total += 1
            self.requests_by_path[request.path] += 1
            return await handler(request)

        app = web.Application(middlewares=[count])
        app.router.add_route("*", r"/status/{code:\d{3}}", self._status)
        app.router.add_route("*", r"/delay/{ms:\d+}", self._delay)
        app.router.add_route("*", "/flaky/{key}", self._flaky)
        app.router.add_route("*", "/{tail:.*}", self._any)  # /headers and everything else
        return app

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"sample app {self.workload} already started on {self.url}")
        runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.address, self.port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self.port == 0:  # the kernel picked one: report the real port
            self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def _serve(app: SampleApp) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with app:
        print(f"sample app {app.workload} ({app.service} {app.version}) serving on {app.url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.sample_app", description="meshplane's sample HTTP service")
    parser.add_argument("--service", required=True, help="service name reported in responses (e.g. reviews)")
    parser.add_argument("--version", required=True, help="version reported in responses (e.g. v1)")
    parser.add_argument("--workload", help="workload name reported in responses (default: SERVICE-VERSION)")
    parser.add_argument("--address", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, required=True, help="port to bind")
    args = parser.parse_args(argv)
    app = SampleApp(
        service=args.service, version=args.version, address=args.address, port=args.port, workload=args.workload
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(app))
    return 0


if __name__ == "__main__":
    sys.exit(main())
