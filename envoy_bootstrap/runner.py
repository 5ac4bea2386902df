"""Run one Envoy as a managed subprocess: start it on a bootstrap, wait for its admin, stop it, never orphan it.

Many Envoys share one machine (one per workload), so each runs with ``--disable-hot-restart`` (no shared-memory
base id to collide on) and ``--concurrency 1`` unless told otherwise. Listener changes (a new AuthorizationPolicy,
a PeerAuthentication mode) reach new connections at once; connections opened before are drained with
``--drain-strategy immediate`` over ``--drain-time-s 5`` (every response on them asks the client to reconnect, and
what is left is closed after 5 s) instead of Envoy's default of a gradual drain over 10 minutes, so that a policy
change is in force everywhere within seconds (Istio drains over 45 s). Envoy's stdout and stderr go to
``<workdir>/<name>.log``, appended across restarts.

Orphans are prevented three ways: ``stop()`` (SIGTERM, then SIGKILL after a bound), an ``atexit`` hook that kills
every Envoy still running when the interpreter exits, and on Linux ``PR_SET_PDEATHSIG`` so the kernel kills Envoy
when the process that started it dies without running any of that (``kill -9`` of a test run; strictly, when the
*thread* that started it exits, which for asyncio is the thread running the loop). Each Envoy gets
its own session, so a Ctrl-C in the terminal reaches only the Python process, which then stops Envoy in order.
"""

from __future__ import annotations

import asyncio
import atexit
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import structlog
from envoy.config.bootstrap.v3 import bootstrap_pb2

from envoy_bootstrap.binary import find_envoy_binary
from envoy_bootstrap.bootstrap import bootstrap_to_json
from envoy_bootstrap.processes import (
    kill_process,
    start_logged_process,
    stop_process,
)

__all__ = [
    "DRAIN_TIME_SECONDS",
    "AdminResponse",
    "EnvoyError",
    "EnvoyExitedError",
    "EnvoyProcess",
    "EnvoyTimeoutError",
    "sidecar_command",
]

log = structlog.get_logger(__name__)

_POLL_INTERVAL_SECONDS = 0.1
_LIVE: set[EnvoyProcess] = set()


DRAIN_TIME_SECONDS = 5


def sidecar_command(
    binary: Path, bootstrap: Path, *, concurrency: int, log_level: str, extra: Sequence[str] = ()
) -> list[str]:
    """The command line of a sidecar Envoy (see the module doc for the flags). ``concurrency`` 0: no
    ``--concurrency``, Envoy's default of one worker per hardware thread (Istio's ``concurrency: 0``)."""
    workers = ["--concurrency", str(concurrency)] if concurrency else []
    return [
        str(binary),
        "-c",
        str(bootstrap),
        "--disable-hot-restart",
        *workers,
        "--log-level",
        log_level,
        "--drain-strategy",
        "immediate",
        "--drain-time-s",
        str(DRAIN_TIME_SECONDS),
        *extra,
    ]


class EnvoyError(RuntimeError):
    """An Envoy subprocess misbehaved; the message ends with the tail of its log."""


class EnvoyExitedError(EnvoyError):
    """Envoy exited while we waited for it."""


class EnvoyTimeoutError(EnvoyError):
    """Envoy did not reach the awaited state in time."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminResponse:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def _kill_all_live() -> None:
    for envoy in list(_LIVE):
        envoy.kill()


atexit.register(_kill_all_live)


class EnvoyProcess:
    """One Envoy subprocess on a given bootstrap. Use as ``async with EnvoyProcess(...) as envoy:``."""

    def __init__(
        self,
        *,
        name: str,
        bootstrap: bootstrap_pb2.Bootstrap,
        workdir: Path,
        log_level: str = "info",
        concurrency: int = 1,
        extra_args: Sequence[str] = (),
        envoy_binary: Path | None = None,
    ) -> None:
        if not bootstrap.admin.address.socket_address.address:
            raise ValueError("bootstrap: admin.address.socket_address is required (readiness is read from admin)")
        if concurrency < 1:
            raise ValueError(f"concurrency: must be >= 1, got {concurrency}")
        self.name = name
        self.bootstrap = bootstrap
        self.workdir = workdir
        self.log_level = log_level
        self.concurrency = concurrency
        self.extra_args = tuple(extra_args)
        self.envoy_binary = envoy_binary
        self.bootstrap_path = workdir / f"{name}.bootstrap.json"
        self.log_path = workdir / f"{name}.log"
        self._process: asyncio.subprocess.Process | None = None

    # ---------------------------------------------------------------------------------------------- properties

    @property
    def admin_url(self) -> str:
        socket_address = self.bootstrap.admin.address.socket_address
        host = socket_address.address
        return (
            f"http://[{host}]:{socket_address.port_value}"
            if ":" in host
            else f"http://{host}:{socket_address.port_value}"
        )

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def command(self) -> list[str]:
        binary = self.envoy_binary or find_envoy_binary()
        return sidecar_command(
            binary, self.bootstrap_path, concurrency=self.concurrency, log_level=self.log_level, extra=self.extra_args
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        return "\n".join(text.splitlines()[-lines:])

    # ---------------------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self.running:
            raise EnvoyError(f"envoy {self.name}: already running (pid {self.pid})")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bootstrap_path.write_text(bootstrap_to_json(self.bootstrap))
        self._process = await start_logged_process(self.command(), self.log_path)
        _LIVE.add(self)
        log.info("envoy_started", envoy=self.name, pid=self._process.pid, admin=self.admin_url, log=str(self.log_path))

    async def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns the exit code (None if never started)."""
        process = self._process
        if process is None:
            return None
        try:
            return await stop_process(process, name=f"envoy {self.name}", timeout=timeout)
        finally:
            _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL without waiting: for teardown paths that cannot await (atexit, cancelled tasks)."""
        if self._process is not None:
            kill_process(self._process)
        _LIVE.discard(self)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ---------------------------------------------------------------------------------------------- admin

    async def admin_request(self, method: str, path: str, *, timeout: float = 2.0) -> AdminResponse:
        if not path.startswith("/"):
            raise ValueError(f"path: must start with '/', got {path!r}")
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.request(method, self.admin_url + path) as response,
        ):
            return AdminResponse(status=response.status, body=await response.text())

    async def admin_get(self, path: str, *, timeout: float = 2.0) -> AdminResponse:
        return await self.admin_request("GET", path, timeout=timeout)

    async def admin_post(self, path: str, *, timeout: float = 2.0) -> AdminResponse:
        return await self.admin_request("POST", path, timeout=timeout)

    async def _poll_admin(self, path: str, done: Callable[[AdminResponse], bool], what: str, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        last = "no answer from admin"
        while True:
            if not self.running:
                raise EnvoyExitedError(
                    f"envoy {self.name} exited with code {self.returncode} while waiting to be {what};"
                    f" log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                response = await self.admin_get(path, timeout=1.0)
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if done(response):
                    return
                last = f"{path} answered {response.status} {response.body.strip()[:200]!r}"
            if asyncio.get_running_loop().time() >= deadline:
                raise EnvoyTimeoutError(
                    f"envoy {self.name} not {what} after {timeout:g}s ({last}); log {self.log_path}:\n{self.log_tail()}"
                )
            await asyncio.sleep(_POLL_INTERVAL_SECONDS)

    async def wait_admin(self, timeout: float = 15.0) -> None:
        """Until the admin endpoint answers at all (needs no control plane)."""
        await self._poll_admin("/server_info", lambda r: r.status == 200, "serving admin", timeout)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until ``/ready`` says LIVE: the initial CDS and LDS fetches are done, so this needs Pilot."""
        await self._poll_admin("/ready", lambda r: r.status == 200, "ready (LIVE)", timeout)
