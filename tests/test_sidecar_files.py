"""A sidecar's identity flags (``agent.sidecar_files.citadel_flags_problem``, shared by ``meshplane pod run`` and
``meshplane-agent sidecar``): all three or none; a partial set is refused, naming what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.sidecar_files import citadel_flags_problem

TOKEN, ROOT = Path("/run/token"), Path("/run/root-cert.pem")


@pytest.mark.parametrize(
    ("citadel", "token_file", "root_cert", "problem"),
    [
        (None, None, None, None),
        ("10.91.0.3:15012", TOKEN, ROOT, None),
        (
            "10.91.0.3:15012",
            None,
            None,
            "--token-file, --root-cert: --citadel, --token-file and --root-cert go together",
        ),
        ("10.91.0.3:15012", TOKEN, None, "--root-cert: --citadel, --token-file and --root-cert go together"),
        (None, TOKEN, ROOT, "--citadel: --citadel, --token-file and --root-cert go together"),
    ],
    ids=["none", "all-three", "citadel-only", "no-root-cert", "no-citadel"],
)
def test_the_identity_flags_go_together(
    citadel: str | None, token_file: Path | None, root_cert: Path | None, problem: str | None
) -> None:
    assert citadel_flags_problem(citadel, token_file, root_cert) == problem
