"""Build hook: generate the protobuf/gRPC code (Citadel's ``citadel/proto``, the NDS name table's
``meshplane/proto``) whenever the package is built.

``pip install .`` and ``pip install -e .`` both run ``build_py``; this one runs ``citadel/proto/generate.py`` first
(grpcio-tools comes from ``[build-system] requires``) and packages the generated ``citadel.v1`` and
``meshplane.nds.v1``, which are gitignored and never committed. Everything else about the package is in ``pyproject.toml``.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

_ROOT = Path(__file__).resolve().parent


class BuildPyWithProtos(build_py):
    """``build_py`` that generates the protobuf/gRPC modules before collecting packages."""

    def run(self) -> None:
        generator = runpy.run_path(str(_ROOT / "citadel" / "proto" / "generate.py"))
        generated = generator["generate"](_ROOT)
        for path in generated:
            self.announce(f"generated {path.relative_to(_ROOT)}", level=2)
        # The package list was computed before the generated packages existed (a fresh clone has no citadel/v1).
        for package in generator["generated_packages"](_ROOT, generated):
            if self.packages is not None and package not in self.packages:
                self.packages.append(package)
            if self.package_data is not None:
                self.package_data.setdefault(package, []).append("*.pyi")
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
