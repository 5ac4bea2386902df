"""Run a control plane and sample it with py-spy from the moment one config file changes until it is stopped
(``--phase change``, the default), or from its start until that file changes (``--phase initial``).

    python -m bench._profiled --output FILE --watch PATH [--phase change|initial] -- COMMAND...

``bench.xds_reference --profile FILE`` wraps Pilot's command with this: xds_load changes one VirtualService file
after the initial sync, so sampling from that file's change until xds_load stops Pilot covers the change push only
(the snapshot, the generation and the sends; idle samples are left out); ``--phase initial`` covers the start and
the initial sync instead (from 0.2 s after the start, once there is an interpreter to attach to), up to that change
(``bench.xds_reference --profile-phase initial``). Only the thread holding the GIL is sampled
(``--gil``: where the CPU goes, not where threads wait for it); gRPC's own C code appears as stacks without a Python
frame or ending in an asyncio ``Handle._run``.

py-spy runs in its own session, so xds_load, which measures and stops the control plane's session, neither counts
its CPU nor stops it. The command runs in a process group of its own, so that xds_load's SIGTERM reaches the wrapper
alone: it stops the sampler, which writes ``FILE`` in py-spy's raw (collapsed stacks) format (the profile leaves out
the shutdown), then forwards the signal to the command, and exits with its status."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

__all__ = ["main"]

POLL_SECONDS = 0.005
SAMPLES_PER_SECOND = 1000
ATTACH_AFTER_SECONDS = 0.2  # --phase initial: py-spy finds no interpreter in a process that has not started one


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_ino, stat.st_size)


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        print("bench._profiled: py-spy not found (pip install py-spy): running without a profile", file=sys.stderr)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._profiled", description=__doc__)
    parser.add_argument("--output", type=Path, required=True, help="py-spy's raw output")
    parser.add_argument("--watch", type=Path, required=True, help="the file whose change starts (or ends) sampling")
    parser.add_argument(
        "--phase",
        choices=("change", "initial"),
        default="change",
        help="change: from the file's change until stopped; initial: from the start until the file changes",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    spy = _py_spy()
    child = subprocess.Popen(command, process_group=0)  # xds_load's SIGTERM to this group reaches only the wrapper
    sampler: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        if sampler is not None and sampler.poll() is None:  # stop sampling first: the profile leaves out shutdown
            sampler.send_signal(signal.SIGINT)
            sampler.wait()
        child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    before = _stamp(args.watch)
    if args.phase == "initial" and spy is not None:
        time.sleep(ATTACH_AFTER_SECONDS)
        sampler = _sample(spy, child.pid, args.output)
    while child.poll() is None and _stamp(args.watch) == before:
        time.sleep(POLL_SECONDS)
    if args.phase == "initial" and sampler is not None and sampler.poll() is None:
        sampler.send_signal(signal.SIGINT)  # the change: the initial phase is over
        sampler.wait()
    if args.phase == "change" and spy is not None and child.poll() is None:
        sampler = _sample(spy, child.pid, args.output)
    status = child.wait()
    if sampler is not None:
        sampler.wait()
    return status


def _sample(spy: str, pid: int, output: Path) -> subprocess.Popen[bytes]:
    argv_spy = [spy, "record", "--pid", str(pid), "--rate", str(SAMPLES_PER_SECOND), "--nonblocking", "--gil"]
    argv_spy += ["--format", "raw", "--output", os.fspath(output)]
    return subprocess.Popen(argv_spy, start_new_session=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
