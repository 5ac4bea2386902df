"""The host side of measuring in pods, for the Mixer benchmark's part 1 (``bench._mixer_envoy``): the open-loop
load generator (``bench._pod_load``) run in a pod by ``meshplane pod exec``, a pod's sidecar process (for its CPU
time) and its Envoy admin counters (admin listens on the pod's 127.0.0.1:15000, read from inside the pod).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.netns import ip
from agent.pod_network import PodAddress
from bench import _pod_load
from e2e.pods import PYTHON, pod_get
from envoy_bootstrap.processes import kill_process, stop_process
from meshplane.names import ADMIN_PORT

__all__ = ["LoadAnswers", "LoadGenerator", "admin_counters", "sidecar_pid"]

_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # no proxy variables: the app is unmodified
_READY_SECONDS = 30.0
_LINE_LIMIT = 64 * 1024 * 1024  # the answers come as one JSON line: about 40 bytes a request


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadAnswers:
    """What the load generator measured: ``(variant, status, seconds)`` per request, the lag of every send behind
    its schedule, its own CPU seconds over the window."""

    answers: tuple[tuple[str, str, float], ...]
    lags: tuple[float, ...]
    cpu: float


class LoadGenerator:
    """``bench._pod_load`` inside pod ``name`` (``meshplane pod exec``, as the pod's app: its uid, its DNS, no proxy
    settings), its stderr in ``log``. ``warm()`` runs the warm-up and answers the address the URL's host resolved
    to; ``measure()`` the measured window; ``stop()`` ends it whatever state it is in."""

    def __init__(self, *, name: str, namespace: str, state_dir: Path, plan: Mapping[str, Any], log: Path) -> None:
        self._argv = [
            *(sys.executable, "-m", "e2e.cli", "pod", "exec", name, "--namespace", namespace),
            *("--state-dir", str(state_dir), "--", PYTHON, "-c", Path(_pod_load.__file__).read_text()),
            json.dumps(dict(plan)),
        ]
        self._plan = plan
        self._log = log
        self._process: asyncio.subprocess.Process | None = None

    async def warm(self) -> str:
        self._log.parent.mkdir(parents=True, exist_ok=True)
        with self._log.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=_ENV,
                limit=_LINE_LIMIT,
            )
        ready = await self._line(float(self._plan["warmup"]) + _READY_SECONDS)
        return str(ready["address"])

    async def measure(self) -> LoadAnswers:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(b"go\n")
        await self._process.stdin.drain()
        found = await self._line(float(self._plan["seconds"]) + float(self._plan["timeout"]) + _READY_SECONDS)
        return LoadAnswers(
            answers=tuple((str(v), str(status), float(s)) for v, status, s in found["answers"]),
            lags=tuple(float(lag) for lag in found["lags"]),
            cpu=float(found["cpu"]),
        )

    async def _line(self, timeout: float) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), timeout)
        except TimeoutError:
            line = b""
        if not line:
            tail = self._log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the load generator in the pod gave no answer within {timeout:g} s:\n{tail}")
        value = json.loads(line)
        assert isinstance(value, dict)
        return value

    async def stop(self) -> None:
        if self._process is None:
            return
        try:
            await stop_process(self._process, name="load generator", timeout=5)
        finally:
            kill_process(self._process)


def sidecar_pid(pod: PodAddress) -> int | None:
    """The pid of the Envoy running in ``pod``'s network namespace (its sidecar); None if there is none."""
    for pid in ip("netns", "pids", pod.netns).stdout.split():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "envoy":
                return int(pid)
        except OSError:
            continue
    return None


async def admin_counters(pod: PodAddress, stat_filter: str, suffixes: Sequence[str]) -> dict[str, int]:
    """The counters of ``pod``'s sidecar whose names match ``stat_filter`` (Envoy admin ``/stats?filter=``), summed
    by the suffix of ``suffixes`` they end with, over the HTTP filters (``http.<stat prefix>.<suffix>``)."""
    url = f"http://127.0.0.1:{ADMIN_PORT}/stats?filter={stat_filter}"
    [(status, body)] = await asyncio.to_thread(pod_get, pod, url)
    if status != 200:
        raise RuntimeError(f"{pod.name}: Envoy admin {url} answered {status}: {body[:200]}")
    counters = dict.fromkeys(suffixes, 0)
    for line in body.splitlines():
        name, _, value = line.partition(": ")
        suffix = next((s for s in suffixes if name.startswith("http.") and name.endswith("." + s)), None)
        if suffix is not None and value.strip().isdigit():
            counters[suffix] += int(value)
    return counters
