"""bench._bytecode: a benchmark's timed starts read bytecode, as an installed wheel's do."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench._bytecode import compile_bytecode


def _package(root: Path, name: str, source: str) -> Path:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    module = root / name / "module.py"
    module.write_text(source)
    return module


def test_bytecode_is_written_for_every_module_of_the_packages(tmp_path: Path) -> None:
    module = _package(tmp_path, "first", "VALUE = 1\n")
    other = _package(tmp_path, "second", "VALUE = 2\n")
    compile_bytecode(tmp_path, ("first", "second", "absent"))  # a package an older tree lacks is skipped
    for source in (module, other, tmp_path / "first" / "__init__.py"):
        assert Path(importlib.util.cache_from_source(str(source))).is_file(), source


def test_a_module_that_does_not_compile_is_an_error(tmp_path: Path) -> None:
    _package(tmp_path, "broken", "def f(:\n")
    with pytest.raises(RuntimeError, match="broken: a module does not compile"):
        compile_bytecode(tmp_path, ("broken",))
