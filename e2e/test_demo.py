"""README's first command: ``meshplane demo`` runs the walkthrough as pods, measures every step and leaves nothing
behind (the demo itself checks the machine after its teardown: ``e2e.pods.leftovers``). The test runs it on a pod
network and in a pods' state directory of its own, so it never shares one with pods of the user's (a demo running
meanwhile) or of another test run."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.demo import DEMO_STEPS, run_demo
from e2e.demo_steps import TCP_SPLIT_HEADING, measured_splits
from e2e.pods import new_state_dir, random_pod_network, why_pods_cannot_run
from e2e.traffic import binomial_bounds

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

REQUESTS = 60  # per measured split, requests or TCP connections


async def test_demo_measures_each_step_and_leaves_nothing_running(tmp_path: Path) -> None:
    lines: list[str] = []

    code = await run_demo(
        requests=REQUESTS,
        workdir=tmp_path / "demo",
        network=random_pod_network(),
        state_dir=new_state_dir(),
        out=lines.append,
    )

    output = "\n".join(lines)
    assert code == 0, output
    # steps 1 and 2 once, step 3 for jason and others, step 6 (TCP) for all-v1 and 80/20
    assert output.count("measured split matches") == 6, output
    assert "All measured splits match their rules." in output
    assert "mutual TLS enforced" in output
    assert "policy enforced" in output  # step 5: 403 from the DENY rule, 5 guests then 429s
    assert "end-user: guest x8 -> 200 200 200 200 200 429 429 429" in output
    assert "Requests Mixer recorded per edge" in output
    assert "Stopped Pilot, Citadel, Mixer and all pods; nothing left on the machine." in output
    assert len([line for line in lines if line.startswith("Step ")]) == len(DEMO_STEPS) + 3
    all_v1, shifted = measured_splits(lines, TCP_SPLIT_HEADING)  # step 6: tcp-echo-all-v1, then tcp-echo-20-v2
    assert all_v1 == {"v1": REQUESTS}, output
    low, high = binomial_bounds(REQUESTS, 0.20)
    assert set(shifted) == {"v1", "v2"} and sum(shifted.values()) == REQUESTS, output
    assert low <= shifted["v2"] <= high, output
