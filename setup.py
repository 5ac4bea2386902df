"""Build hook: generate Citadel's gRPC code from ``citadel/proto`` whenever the package is built.

``pip install .`` and ``pip install -e .`` both run ``build_py``; this one runs ``citadel/proto/generate.py`` first
(grpcio-tools comes from ``[build-system] requires``) and packages the generated ``citadel.v1``, which is
gitignored and never committed. Everything else about the package is in ``pyproject.toml``.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

_ROOT = Path(__file__).resolve().parent
_GENERATED_PACKAGE = "citadel.v1"


class BuildPyWithProtos(build_py):
    """``build_py`` that generates the protobuf/gRPC modules before collecting packages."""

    def run(self) -> None:
        generate = runpy.run_path(str(_ROOT / "citadel" / "proto" / "generate.py"))["generate"]
        for path in generate(_ROOT):
            self.announce(f"generated {path.relative_to(_ROOT)}", level=2)
        # The package list was computed before the generated package existed (a fresh clone has no citadel/v1).
        if self.packages is not None and _GENERATED_PACKAGE not in self.packages:
            self.packages.append(_GENERATED_PACKAGE)
        if self.package_data is not None:
            self.package_data.setdefault(_GENERATED_PACKAGE, []).append("*.pyi")
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
