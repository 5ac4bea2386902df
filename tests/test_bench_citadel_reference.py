"""bench.citadel_certs --reference: an earlier revision's Citadel runs from its own tree, and the report sets
this checkout's medians beside the reference's against issue 13's targets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench._reference_tree import REPOSITORY, ReferenceTree, ReferenceTreeError
from bench.citadel_certs import REFERENCE_REVISION, comparison_report, first_certificates_seconds


def _has_reference() -> bool:
    if shutil.which("git") is None:
        return False
    found = subprocess.run(
        ["git", "-C", str(REPOSITORY), "cat-file", "-e", f"{REFERENCE_REVISION}^{{commit}}"], capture_output=True
    )
    return found.returncode == 0


_IN_GIT = _has_reference()
_NO_REFERENCE = "needs git and this repository's history back to the reference (a full clone has both)"


def _round(cpu: float, first: float) -> dict[str, Any]:
    return {
        "csr": {"certificates": 1000, "citadel_cpu_s": cpu, "per_second": 1000 / cpu},
        "sds": {"seconds_to_all_first_certificates": first},
    }


def _comparison(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    return {
        "key_type": "ecdsa",
        "reference": {"revision": "before", "commit": "0123456789abcdef"},
        "rounds": [{"reference": reference, "current": current} for reference, current in pairs],
    }


def test_the_report_gives_medians_ranges_the_ratio_and_both_targets() -> None:
    report = comparison_report(
        _comparison(
            [
                (_round(2.0, 1.5), _round(1.0, 0.9)),
                (_round(1.0, 1.2), _round(0.5, 1.1)),
                (_round(1.25, 1.3), _round(0.8, 0.7)),
            ]
        )
    )
    lines = report.splitlines()
    assert lines[0] == "Citadel (ecdsa workload keys), 3 alternating rounds of the reference (before) and this checkout"
    assert "| reference 0123456789 | 800 (500-1000) | 800 (500-1000) | 1.30 (1.20-1.50) |" in lines
    assert "| this checkout | 1250 (1000-2000) | 1250 (1000-2000) | 0.90 (0.70-1.10) |" in lines
    assert "certificates per CPU-second, medians: 1.56x the reference (issue 13: at least 1.5x): met" in lines
    assert "every first certificate within 1 s of connecting: 2 of 3 rounds (issue 13: every round)" in lines


def test_a_ratio_under_the_target_is_not_met() -> None:
    report = comparison_report(_comparison([(_round(1.0, 1.0), _round(0.8, 1.0))]))
    assert "certificates per CPU-second, medians: 1.25x the reference (issue 13: at least 1.5x): not met" in report
    assert "1 of 1 rounds" in report


def test_a_round_without_the_sds_part_has_no_first_certificate_time() -> None:
    assert first_certificates_seconds({"csr": {}}) is None


@pytest.mark.skipif(
    not _IN_GIT, reason="needs git and this repository's history back to the reference (a full clone has both)"
)
def test_the_reference_tree_is_the_revision_built_and_imported_from_its_own_directory(tmp_path: Path) -> None:
    tree = ReferenceTree.extract(REFERENCE_REVISION, tmp_path / "reference")
    assert tree.commit == REFERENCE_REVISION
    assert (tree.root / "citadel" / "v1" / "ca_pb2.py").exists()  # its own generated code
    assert tree.check_imports("citadel") == tree.root / "citadel" / "__init__.py"
    shown = subprocess.run(
        ["git", "-C", str(REPOSITORY), "show", f"{REFERENCE_REVISION}:citadel/ca.py"], capture_output=True
    )
    assert (tree.root / "citadel" / "ca.py").read_bytes() == shown.stdout
    command = tree.command("citadel", ["--help"])
    assert command[:2] == ["env", f"PYTHONPATH={tree.root}"] and command[3:6] == ["-P", "-m", "citadel"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPOSITORY, check=False)
    assert done.returncode == 0 and "--key-type" in done.stdout


@pytest.mark.skipif(
    not _IN_GIT, reason="needs git and this repository's history back to the reference (a full clone has both)"
)
def test_an_unknown_revision_says_so(tmp_path: Path) -> None:
    with pytest.raises(ReferenceTreeError, match="revision is unknown"):
        ReferenceTree.extract("no-such-revision-anywhere", tmp_path / "reference")
