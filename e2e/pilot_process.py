"""Pilot as a subprocess of the harness: started on a config directory, its monitor read over HTTP.

Pilot runs as ``python -m pilot`` (the same interpreter as the tests, so the same checkout), logs to
``<workdir>/pilot.log`` (appended across restarts), and is guarded against orphaning like Envoy is
(own session, parent-death signal, ``stop()`` with a SIGKILL bound).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from envoy_bootstrap.processes import kill_process, start_logged_process, stop_process

__all__ = ["PilotError", "PilotProcess"]

log = structlog.get_logger(__name__)

_POLL_INTERVAL_SECONDS = 0.1


class PilotError(RuntimeError):
    """Pilot exited or did not become ready; the message ends with the tail of its log."""


class PilotProcess:
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
        self.workdir = workdir
        self.xds_address = xds_address
        self.monitor_address = monitor_address
        self.debounce = debounce
        self.log_level = log_level
        self.log_path = workdir / "pilot.log"
        self._process: asyncio.subprocess.Process | None = None

    @property
    def monitor_url(self) -> str:
        return f"http://{self.monitor_address}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pilot",
            "--config-dir",
            str(self.config_dir),
            "--xds-address",
            self.xds_address,
            "--monitor-address",
            self.monitor_address,
            "--debounce",
            self.debounce,
            "--log-level",
            self.log_level,
        ]

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        return "\n".join(text.splitlines()[-lines:])

    async def start(self, ready_timeout: float = 20.0) -> None:
        if self.running:
            raise PilotError("pilot already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._process = await start_logged_process(self.command(), self.log_path)
        log.info("pilot_started", pid=self._process.pid, xds=self.xds_address, monitor=self.monitor_url)
        await self.wait_ready(ready_timeout)

    async def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            await stop_process(process, name="pilot", timeout=timeout)

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
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(self.monitor_url + path) as response,
        ):
            if response.status != 200:
                raise PilotError(f"pilot {path} answered {response.status}: {(await response.text())[:300]}")
            return await response.json(content_type=None)

    async def syncz(self) -> dict[str, Any]:
        """``{"snapshot_version": int, "proxies": [{"id", "synced", "types": {...}}]}``"""
        result: dict[str, Any] = await self.get_json("/debug/syncz")
        return result

    async def configz(self) -> dict[str, Any]:
        """``{"version": int, "accepted": [...], "rejected": [{"kind", "namespace", "name", "errors"}]}``"""
        result: dict[str, Any] = await self.get_json("/debug/configz")
        return result

    async def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        last = "no answer"
        while True:
            if not self.running:
                code = self._process.returncode if self._process is not None else None
                raise PilotError(f"pilot exited with code {code}; log {self.log_path}:\n{self.log_tail()}")
            try:
                status, body = await self.get("/ready", timeout=1.0)
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if status == 200:
                    return
                last = f"/ready answered {status} {body.strip()[:200]!r}"
            if asyncio.get_running_loop().time() >= deadline:
                raise PilotError(
                    f"pilot not ready after {timeout:g}s ({last}); log {self.log_path}:\n{self.log_tail()}"
                )
            await asyncio.sleep(_POLL_INTERVAL_SECONDS)
