"""CITADEL_PROFILE: the event loop's cProfile, written when the block ends; nothing without it."""

from __future__ import annotations

import pstats
from pathlib import Path

from citadel.profiling import PROFILE_ENV, profiled


def _work() -> int:
    return sum(range(1000))


def test_profile_written_when_the_variable_names_a_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "citadel.prof"
    with profiled({PROFILE_ENV: str(target)}):
        _work()
    functions = {function for (_file, _line, function) in pstats.Stats(str(target)).stats}  # type: ignore[attr-defined]
    assert "_work" in functions


def test_nothing_written_without_the_variable(tmp_path: Path) -> None:
    with profiled({}):
        _work()
    assert list(tmp_path.iterdir()) == []
