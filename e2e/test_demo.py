"""README's first command: ``meshplane demo`` runs the walkthrough as pods, measures every step and leaves nothing
behind (the demo itself checks the machine after its teardown: ``e2e.pods.leftovers``). The test runs it on a pod
network and in a pods' state directory of its own, so it never shares one with pods of the user's (a demo running
meanwhile) or of another test run."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.demo import DEMO_STEPS, run_demo
from e2e.pods import new_state_dir, random_pod_network, why_pods_cannot_run

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))


async def test_demo_measures_each_step_and_leaves_nothing_running(tmp_path: Path) -> None:
    lines: list[str] = []

    code = await run_demo(
        requests=60,
        workdir=tmp_path / "demo",
        network=random_pod_network(),
        state_dir=new_state_dir(),
        out=lines.append,
    )

    output = "\n".join(lines)
    assert code == 0, output
    assert output.count("measured split matches") == 4, output  # steps 1 and 2 once, step 3 for jason and others
    assert "All measured splits match their rules." in output
    assert "mutual TLS enforced" in output
    assert "policy enforced" in output  # step 5: 403 from the DENY rule, 5 guests then 429s
    assert "end-user: guest x8 -> 200 200 200 200 200 429 429 429" in output
    assert "Requests Mixer recorded per edge" in output
    assert "Stopped Pilot, Citadel, Mixer and all pods; nothing left on the machine." in output
    assert len([line for line in lines if line.startswith("Step ")]) == len(DEMO_STEPS) + 2
