"""``meshplane demo``: the pods' flags and the compose mesh's are refused on the other demo (exit 2, before anything
starts), not accepted and ignored."""

from __future__ import annotations

import pytest

from e2e.cli import main


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--compose", "--rootless"], "--rootless: only without --compose (the pods' demo)"),
        (["--compose", "--keep-running"], "--keep-running: only without --compose (the pods' demo)"),
        (
            ["--compose", "--workdir", "/tmp/x", "--rootless"],
            "--rootless, --workdir: only without --compose (the pods' demo)",
        ),
        (["--project", "mesh"], "--project: only with --compose"),
        (["--config-dir", "compose/config"], "--config-dir: only with --compose"),
    ],
    ids=["compose-rootless", "compose-keep-running", "compose-workdir", "project-without-compose", "config-dir-alone"],
)
def test_a_flag_of_the_other_demo_is_refused(argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", *argv]) == 2
    assert capsys.readouterr().err == f"meshplane demo: {problem}\n"
