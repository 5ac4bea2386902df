"""Issue 12's "done when": ``meshplane analyze`` on Istio's documented sample configs reports nothing unsupported.

``e2e/istio_docs/<task>/`` holds the YAML of each Istio documentation task meshplane reproduces, written as Istio's
docs write it; the task's e2e scenario applies those very files. Each file is analyzed alone, as a user would run
``meshplane analyze`` on one step of a task (a task's ``mesh-config.yaml`` is its MeshConfig, ``--mesh-config``):
nothing "not supported", nothing skipped (MP0102), no file unreadable (MP0100), no mesh config rejected (MP0103).
A step may name what an earlier step created (a subset of an earlier DestinationRule) or replace it under the same
name, so other rejections of a file read alone are not counted here; the e2e scenarios apply the steps in order.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pilot.analyze import analyze_directory, format_finding

ISTIO_DOCS = Path(__file__).resolve().parent.parent / "e2e" / "istio_docs"
TASKS = sorted(path for path in ISTIO_DOCS.iterdir() if path.is_dir())
MESH_CONFIG = "mesh-config.yaml"
STEPS = [step for task in TASKS for step in sorted(task.glob("*.yaml")) if step.name != MESH_CONFIG]
CONFIG_PROBLEMS = frozenset({"MP0100", "MP0102", "MP0103"})


def test_the_tasks_are_there() -> None:
    assert len(TASKS) >= 5, f"expected Istio's documented tasks under {ISTIO_DOCS}, found {[t.name for t in TASKS]}"
    for task in TASKS:
        assert list(task.glob("*.yaml")), f"{task} has no YAML"


@pytest.mark.parametrize("step", STEPS, ids=[f"{step.parent.name}/{step.name}" for step in STEPS])
async def test_analyze_reports_nothing_unsupported(step: Path, tmp_path: Path) -> None:
    shutil.copy(step, tmp_path / step.name)
    mesh_config = step.parent / MESH_CONFIG
    findings = await analyze_directory(tmp_path, mesh_config if mesh_config.is_file() else None)
    problems = [format_finding(f) for f in findings if f.code in CONFIG_PROBLEMS or "not supported" in f.message]
    assert problems == []
