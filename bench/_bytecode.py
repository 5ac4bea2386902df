"""Bytecode for the code a benchmark starts, written before it is timed, as an installed wheel has it.

``pip install`` of the wheel compiles every module (``__pycache__/*.pyc``); a checkout run in place compiles a module
the first time it is imported, and never when ``PYTHONDONTWRITEBYTECODE`` is set (as on this machine's shells): then
each start of Pilot compiled about 170 modules again, 0.26 s of CPU that no installed Pilot spends. Python reads
bytecode whatever that variable says, so writing it once here makes every timed start one of an installed Pilot.
"""

from __future__ import annotations

import compileall
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PACKAGES", "compile_bytecode"]

PACKAGES = ("meshplane", "xdscore", "pilot", "mixer", "citadel", "envoy_bootstrap", "agent", "injector")
_REPOSITORY = Path(__file__).resolve().parents[1]


def compile_bytecode(root: Path = _REPOSITORY, packages: Sequence[str] = PACKAGES) -> None:
    """Write the bytecode of ``packages`` under ``root`` where it is missing or older than its source; a package
    that is not there (an earlier revision's tree) is skipped. Raises RuntimeError if a module does not compile."""
    for package in packages:
        directory = root / package
        if directory.is_dir() and not compileall.compile_dir(directory, quiet=2, workers=1):
            raise RuntimeError(f"{directory}: a module does not compile (python -m compileall {directory})")
