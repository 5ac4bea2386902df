"""Control-plane processes of the harness (Pilot, Citadel, Mixer): started as ``python -m <package>``, read over HTTP.

Each runs with the same interpreter as the tests (so the same checkout), logs to ``<workdir>/<name>.log``
(appended across restarts), and is guarded against orphaning like Envoy is (own session, parent-death signal,
``stop()`` with a SIGKILL bound). ``wait_ready`` polls the process's own ``/ready`` on its monitor address.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from envoy_bootstrap.processes import kill_process, start_logged_process, stop_process

__all__ = [
    "CitadelProcess",
    "ControlPlaneError",
    "ControlPlaneProcess",
    "MixerProcess",
    "PilotError",
    "PilotProcess",
]

log = structlog.get_logger(__name__)

_POLL_INTERVAL_SECONDS = 0.1


class ControlPlaneError(RuntimeError):
    """A control-plane process exited or did not become ready; the message ends with the tail of its log."""


class PilotError(ControlPlaneError):
    """Pilot exited, did not become ready, or its monitor answered an error."""


class ControlPlaneProcess:
    """One control-plane process: ``name`` is its Python package (``python -m <name>``) and its log's name."""

    name = ""

    def __init__(self, *, workdir: Path, monitor_address: str, arguments: list[str]) -> None:
        self.workdir = workdir
        self.monitor_address = monitor_address
        self.arguments = arguments
        self.log_path = workdir / f"{self.name}.log"
        self._process: asyncio.subprocess.Process | None = None

    def error(self, message: str) -> ControlPlaneError:
        return ControlPlaneError(f"{self.name}: {message}")

    @property
    def monitor_url(self) -> str:
        return f"http://{self.monitor_address}"

    @property
    def pid(self) -> int | None:
        """The running process's pid (benchmarks read its CPU time); None when stopped."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.name, *self.arguments]

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        return "\n".join(text.splitlines()[-lines:])

    async def start(self, ready_timeout: float = 20.0) -> None:
        if self.running:
            raise self.error("already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._process = await start_logged_process(self.command(), self.log_path)
        log.info("control_plane_started", process=self.name, pid=self._process.pid, monitor=self.monitor_url)
        await self.wait_ready(ready_timeout)

    async def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            await stop_process(process, name=self.name, timeout=timeout)

    def kill(self) -> None:
        if self._process is not None:
            kill_process(self._process)

    async def get(self, path: str, *, timeout: float = 2.0) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(self.monitor_url + path) as response,
        ):
            return response.status, await response.text()

    async def get_json(self, path: str, *, timeout: float = 2.0) -> Any:
        status, body = await self.get(path, timeout=timeout)
        if status != 200:
            raise self.error(f"{path} answered {status}: {body[:300]}")
        return json.loads(body)

    async def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        last = "no answer"
        while True:
            if not self.running:
                code = self._process.returncode if self._process is not None else None
                raise self.error(f"exited with code {code}; log {self.log_path}:\n{self.log_tail()}")
            try:
                status, body = await self.get("/ready", timeout=1.0)
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if status == 200:
                    return
                last = f"/ready answered {status} {body.strip()[:200]!r}"
            if asyncio.get_running_loop().time() >= deadline:
                raise self.error(f"not ready after {timeout:g}s ({last}); log {self.log_path}:\n{self.log_tail()}")
            await asyncio.sleep(_POLL_INTERVAL_SECONDS)


class PilotProcess(ControlPlaneProcess):
    name = "pilot"

    def __init__(
        self,
        *,
        config_dir: Path,
        workdir: Path,
        xds_address: str,
        monitor_address: str,
        debounce: str = "100ms",
        log_level: str = "info",
    ) -> None:
        self.config_dir = config_dir
        self.xds_address = xds_address
        self.debounce = debounce
        self.log_level = log_level
        arguments = [
            *("--config-dir", str(config_dir), "--xds-address", xds_address, "--monitor-address", monitor_address),
            *("--debounce", debounce, "--log-level", log_level),
        ]
        super().__init__(workdir=workdir, monitor_address=monitor_address, arguments=arguments)

    def error(self, message: str) -> ControlPlaneError:
        return PilotError(f"pilot: {message}")

    async def syncz(self) -> dict[str, Any]:
        """``{"snapshot_version": int, "proxies": [{"id", "synced", "types": {...}}]}``"""
        result: dict[str, Any] = await self.get_json("/debug/syncz")
        return result

    async def configz(self) -> dict[str, Any]:
        """``{"version": int, "accepted": [...], "rejected": [{"kind", "namespace", "name", "errors"}]}``"""
        result: dict[str, Any] = await self.get_json("/debug/configz")
        return result


class CitadelProcess(ControlPlaneProcess):
    """Citadel on ``sds_address`` with its CA in ``ca_dir`` (created on first start)."""

    name = "citadel"

    def __init__(
        self,
        *,
        ca_dir: Path,
        workdir: Path,
        sds_address: str,
        monitor_address: str,
        cert_ttl: str = "24h",
        extra_arguments: tuple[str, ...] = (),
        log_level: str = "info",
    ) -> None:
        self.ca_dir = ca_dir
        self.sds_address = sds_address
        arguments = [
            *("--ca-dir", str(ca_dir), "--sds-address", sds_address, "--monitor-address", monitor_address),
            *("--cert-ttl", cert_ttl, "--log-level", log_level, *extra_arguments),
        ]
        super().__init__(workdir=workdir, monitor_address=monitor_address, arguments=arguments)


class MixerProcess(ControlPlaneProcess):
    """Mixer on ``grpc_address`` (ext_authz and access logs), reading the mesh's config directory as Pilot does."""

    name = "mixer"

    def __init__(
        self,
        *,
        config_dir: Path,
        workdir: Path,
        grpc_address: str,
        monitor_address: str,
        log_level: str = "info",
        extra_arguments: tuple[str, ...] = (),
    ) -> None:
        self.config_dir = config_dir
        self.grpc_address = grpc_address
        arguments = [
            *("--config-dir", str(config_dir), "--grpc-address", grpc_address, "--monitor-address", monitor_address),
            *("--log-level", log_level, *extra_arguments),
        ]
        super().__init__(workdir=workdir, monitor_address=monitor_address, arguments=arguments)

    async def graph(self) -> dict[str, Any]:
        """``/graph``: ``{"window_seconds", "nodes": [...], "edges": [...]}``"""
        result: dict[str, Any] = await self.get_json("/graph")
        return result

    async def configz(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.get_json("/debug/configz")
        return result

    async def metrics_text(self) -> str:
        status, body = await self.get("/metrics")
        if status != 200:
            raise self.error(f"/metrics answered {status}: {body[:300]}")
        return body
