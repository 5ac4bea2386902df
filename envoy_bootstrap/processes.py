"""Child processes of the mesh (Envoy, Pilot, later Citadel and Mixer): started with their output in a log file,
killed with their parent, stopped with SIGTERM then SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

__all__ = ["die_with_parent_preexec", "kill_process", "start_logged_process", "stop_process"]

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to SIGKILL the child when its parent dies; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


async def start_logged_process(command: Sequence[str], log_path: Path) -> asyncio.subprocess.Process:
    """Start ``command`` in its own session, stdout and stderr appended to ``log_path`` after a start marker."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        log_file.write(f"---- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(command)}\n".encode())
        log_file.flush()
        return await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent_preexec(),
        )


def kill_process(process: asyncio.subprocess.Process) -> None:
    """SIGKILL without waiting: for teardown paths that cannot await (atexit, cancelled tasks)."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)


async def stop_process(process: asyncio.subprocess.Process, *, name: str, timeout: float = 5.0) -> int | None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; never leaves the child running, even if cancelled."""
    try:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                log.warning("process_kill_after_timeout", process=name, pid=process.pid, timeout=timeout)
                kill_process(process)
                await process.wait()
    finally:
        kill_process(process)
    log.info("process_stopped", process=name, pid=process.pid, returncode=process.returncode)
    return process.returncode
