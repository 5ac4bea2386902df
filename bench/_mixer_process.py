"""Mixer in its own process for the Mixer benchmark (``bench.mixer_policy``), so that its CPU time is measured apart
from the load generators in the benchmark process.

``StandaloneMixer`` runs ``python -m mixer`` on free loopback ports over a config directory holding the demo mesh's
registry (``e2e/demo_config/00-reviews-mesh.yaml``: reviews-v1..v3 at 127.0.0.21-23, productpage at 127.0.0.10)
and the Mixer policies under test; no workload has to run for Mixer to resolve those addresses. ``child_pid`` finds
the Mixer that a ``LocalMesh`` started (the harness does not expose the process).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bench._mixer_stats import cpu_seconds
from e2e.mesh_config import DEMO_SUBNET, render_demo_mesh
from envoy_bootstrap.processes import kill_process, start_logged_process, stop_process

__all__ = ["BENCH_MIXER_POLICIES", "StandaloneMixer", "child_pid", "free_port"]

# An AccessList (deny a user nobody is) and a RateLimit (a limit nobody reaches) on every reviews workload: each
# check evaluates both, one CEL value lookup and one counter per check, and allows the request.
BENCH_MIXER_POLICIES = """\
apiVersion: mixer.meshplane.io/v1
kind: AccessList
metadata:
  name: bench-blocked-users
  namespace: default
spec:
  selector:
    matchLabels:
      app: reviews
  value: request.headers["end-user"]
  entries: ["mallory", "trudy"]
  entryType: STRINGS
  mode: deny
---
apiVersion: mixer.meshplane.io/v1
kind: RateLimit
metadata:
  name: bench-quota
  namespace: default
spec:
  selector:
    matchLabels:
      app: reviews
  key: request.headers["end-user"]
  limit:
    requests: 1000000000
    per: 1s
"""


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def child_pid(argv_fragment: Sequence[str]) -> int | None:
    """The pid of a child of this process whose command line contains ``argv_fragment`` (consecutive arguments)."""
    parent = os.getpid()
    wanted = [part.encode() for part in argv_fragment]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid != parent:
            continue
        if any(argv[i : i + len(wanted)] == wanted for i in range(len(argv))):
            return int(entry.name)
    return None


class StandaloneMixer:
    """``python -m mixer`` over a fresh config directory in ``workdir``; its log is ``workdir/mixer.log``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.config_dir = workdir / "config"
        self.grpc_address = f"127.0.0.1:{free_port()}"
        self.monitor_url = f"http://127.0.0.1:{free_port()}"
        self.log_path = workdir / "mixer.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 30.0) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "00-reviews-mesh.yaml").write_text(render_demo_mesh(DEMO_SUBNET))
        (self.config_dir / "10-bench-policies.yaml").write_text(BENCH_MIXER_POLICIES)
        command = [
            sys.executable,
            *("-m", "mixer", "--config-dir", str(self.config_dir), "--grpc-address", self.grpc_address),
            *("--monitor-address", self.monitor_url.removeprefix("http://"), "--log-level", "warning"),
        ]
        self.process = await start_logged_process(command, self.log_path)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"mixer exited with code {self.process.returncode}; see {self.log_path}")
                try:
                    async with session.get(f"{self.monitor_url}/ready") as ready:
                        if ready.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mixer not ready after {timeout:g}s; see {self.log_path}")
                await asyncio.sleep(0.1)
        await self._check_policies_accepted()

    async def _check_policies_accepted(self) -> None:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(f"{self.monitor_url}/debug/configz") as response,
        ):
            configz = await response.json()
        if configz.get("rejected"):
            raise RuntimeError(f"mixer rejected the benchmark config: {configz['rejected']}")

    @property
    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid if self.process is not None else None)

    async def metrics_text(self) -> str:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"{self.monitor_url}/metrics") as response,
        ):
            return await response.text()

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            try:
                await stop_process(process, name="mixer")
            finally:
                kill_process(process)
