"""Parse part of the config directory in a second process while this one is still starting.

A control plane's start is importing (grpc, the Envoy protos, its own modules) and then reading the config; on a
machine with two cores, the second can read meanwhile. ``ParseAhead.start(config_dir)`` is called first thing in
``main`` (this module imports only the standard library, so nothing heavy is loaded before) and starts
``pilot.config.parse_worker``: it lists the directory as ``DirectorySource`` does, parses a share of its
files (``pilot.config.source_files.ahead_share``: the last files in name order, ``share`` of their bytes) exactly as
the source would, and writes the parses with the signature each file had when listed, pickled, to its stdout.
``DirectorySource.load_initial`` meanwhile parses the other files and then takes the worker's parses
(``results``), keeping one only if its file's signature is still the one it lists now: every other file, and all
of them if the worker failed (exit status, a signal, unreadable output), is parsed in this process, as without it.
So the worker can only save time; what is loaded is the same.

Not started with fewer than two usable CPUs (it would compete with the imports) or fewer than ``MIN_FILES``
config files (a second interpreter costs more than it saves).
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["MIN_FILES", "SHARE", "ParseAhead", "config_dir_argument", "main_with_parse_ahead"]

SHARE = 0.5  # of the config bytes: the worker starts ~0.1 s late (its interpreter) and pickles what it parsed
MIN_FILES = 200
WAIT_SECONDS = 60.0
# imported by name, not run with -m: what it pickles must refer to pilot.config.parse_worker, not to __main__.
# Ctrl-C reaches the whole process group: the command stops the worker (``stop``), the worker ignores it.
_WORKER = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "from pilot.config.parse_worker import main; sys.exit(main(sys.argv[1:]))"
)


class ParseAhead:
    """A running parse worker (or none: ``results`` is then empty)."""

    def __init__(self, process: subprocess.Popen[bytes] | None, share: float = SHARE) -> None:
        self._process = process
        self.share = share
        self.failure: str | None = None  # why the worker's parses were not used (for the log)
        self.taken = 0  # files whose parse by the worker was used

    @classmethod
    def start(cls, config_dir: Path, *, share: float = SHARE, min_files: int = MIN_FILES) -> ParseAhead:
        """Start a worker on ``config_dir`` if this machine has a second CPU for it."""
        if _usable_cpus() < 2 or not config_dir.is_dir():
            return cls(None, share)
        command = [sys.executable, "-c", _WORKER, str(config_dir), str(share), str(min_files)]
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        except OSError:
            return cls(None, share)
        return cls(process, share)

    @property
    def started(self) -> bool:
        return self._process is not None

    def results(self) -> dict[str, tuple[Any, Any]]:
        """Wait for the worker; its parses, file -> (``FileSignature`` when listed, ``ParsedFile``). Empty when no
        worker runs or it failed (``failure`` says why). Blocks: call it off the event loop. Once only."""
        process, self._process = self._process, None
        if process is None:
            return {}
        try:
            output, _ = process.communicate(timeout=WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return self._failed(f"no answer within {WAIT_SECONDS:.0f} s")
        if process.returncode != 0:
            return self._failed(f"exit status {process.returncode}")
        try:
            results = pickle.loads(output)
        except Exception as exc:  # truncated or foreign output: parse here instead
            return self._failed(f"unreadable output ({type(exc).__name__})")
        return results if isinstance(results, dict) else self._failed("unexpected output")

    def stop(self) -> None:
        """Kill the worker if it is still running (a start that fails before loading the config)."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.communicate()

    def _failed(self, reason: str) -> dict[str, tuple[Any, Any]]:
        self.failure = reason
        return {}


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def main_with_parse_ahead(argv: Sequence[str] | None, run: Callable[[Sequence[str] | None, ParseAhead], int]) -> int:
    """A command's ``main``: start a worker on the command line's ``--config-dir``, then ``run(argv, worker)`` (which
    imports the command's heavy modules: that is what the worker overlaps); the worker is stopped when it returns."""
    config_dir = config_dir_argument(sys.argv[1:] if argv is None else argv)
    parse_ahead = ParseAhead.start(config_dir) if config_dir is not None else ParseAhead(None)
    try:
        return run(argv, parse_ahead)
    finally:
        parse_ahead.stop()


def config_dir_argument(argv: Sequence[str]) -> Path | None:
    """``--config-dir`` of a command line, read before the command's own parser (which needs the imports the
    worker overlaps) checks it and everything else; None when it is not there."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--config-dir", type=Path)
    try:
        known, _ = parser.parse_known_args(argv)
    except SystemExit:  # a malformed command line: the command's parser says what is wrong
        return None
    config_dir: Path | None = known.config_dir
    return config_dir
