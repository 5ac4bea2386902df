"""A live Pilot process (``python -m pilot``) gets the corpus' files one after another, as a user editing its config
directory would: each broken file is rejected (listed in /debug/configz with its errors), the valid config stays in
force, and Pilot stays up and answering. The parser-level files (depth, size, bytes) are a group of their own."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from e2e.control_plane import PilotProcess
from e2e.harness import MONITOR_PORT, PILOT_HOST, XDS_PORT, find_free_subnet
from pilot.config.parse import parse_config_text
from tests.config_corpus import (
    DEPENDENTS,
    HAND_WRITTEN,
    PARSER_CASES,
    Case,
    FileCase,
    case_file_text,
    mutation_cases,
    render,
)
from tests.config_corpus import VALID_MESH as MESH

SAMPLE = [*mutation_cases()[::40], *HAND_WRITTEN[::12]]
WAIT_SECONDS = 15.0
VALID = render(MESH)
MESH_KEYS_BY_INDEX = [f"{d['kind']}/{d['metadata']['namespace']}/{d['metadata']['name']}" for d in MESH]
MESH_KEYS = sorted(MESH_KEYS_BY_INDEX)


def _accepted(configz: dict[str, Any]) -> list[str]:
    return sorted(f"{a['kind']}/{a['namespace']}/{a['name']}" for a in configz["accepted"])


def _may_go(case: Case) -> set[str]:
    """What a case may take out of force: the document it breaks, when its name is what broke (and what uses it)."""
    if case.replaces is None:
        return set()
    return {MESH_KEYS_BY_INDEX[i] for i in (case.replaces, *DEPENDENTS.get(case.replaces, ()))}


def _write(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)  # as editors and kubectl-style tools do: one atomic change


async def _until(pilot: PilotProcess, done: Any, what: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        assert pilot.running, f"pilot exited:\n{pilot.log_tail()}"
        configz: dict[str, Any] = await pilot.configz()  # answers within 2s, or this raises: no stall
        if done(configz):
            return configz
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not seen in {WAIT_SECONDS}s: {str(configz)[:2000]}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def pilot(tmp_path: Path) -> AsyncIterator[PilotProcess]:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "mesh.yaml").write_text(VALID)
    host = f"{find_free_subnet()}.{PILOT_HOST}"
    process = PilotProcess(
        config_dir=config_dir,
        workdir=tmp_path,
        xds_address=f"{host}:{XDS_PORT}",
        monitor_address=f"{host}:{MONITOR_PORT}",
        log_level="warning",
    )
    await process.start()
    try:
        await _until(process, lambda c: _accepted(c) == MESH_KEYS, "the valid mesh in force")
        yield process
    finally:
        await process.stop()


async def test_pilot_rejects_each_case_and_keeps_serving_the_valid_mesh(pilot: PilotProcess) -> None:
    mesh = pilot.config_dir / "mesh.yaml"
    for case in SAMPLE:
        text, _, _ = case_file_text(case)
        expected = [str(e).split(": ", 1)[1] for r in parse_config_text(text, "x").rejected for e in r.errors]
        _write(mesh, text.encode())

        def rejected(configz: dict[str, Any], case: Case = case, expected: list[str] = expected) -> bool:
            errors = [e.split(": ", 1)[1] for r in configz["rejected"] for e in r["errors"]]
            return bool(expected) and set(expected) <= set(errors)

        configz = await _until(pilot, rejected, f"the rejection of {case.id}")
        assert set(_accepted(configz)) >= set(MESH_KEYS) - _may_go(case), case.id
        _write(mesh, VALID.encode())
        await _until(pilot, lambda c: _accepted(c) == MESH_KEYS and not c["rejected"], f"the mesh back after {case.id}")
    status, _ = await pilot.get("/ready")
    assert status == 200


@pytest.mark.parametrize("case", PARSER_CASES, ids=[c.id for c in PARSER_CASES])
async def test_pilot_survives_parser_level_files(pilot: PilotProcess, case: FileCase) -> None:
    _write(pilot.config_dir / "extra.yaml", case.content)

    configz = await _until(
        pilot,
        lambda c: (
            any(e.startswith(str(pilot.config_dir / "extra.yaml")) for e in c["file_errors"])
            or any(r["file"].endswith("extra.yaml") for r in c["rejected"])
        ),
        f"the rejection of {case.id}",
    )
    assert _accepted(configz) == MESH_KEYS
    assert len(str(configz)) < 100_000
    status, _ = await pilot.get("/ready")
    assert status == 200
