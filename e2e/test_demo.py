"""README's first command: ``meshplane demo`` runs the walkthrough, measures every step and stops everything."""

from __future__ import annotations

from pathlib import Path

from e2e.demo import DEMO_STEPS, run_demo
from e2e.harness import port_free
from e2e.mesh_config import DEMO_SUBNET, DEMO_WORKLOADS


async def test_demo_measures_each_step_and_leaves_nothing_running(tmp_path: Path) -> None:
    lines: list[str] = []

    code = await run_demo(requests=60, workdir=tmp_path / "demo", out=lines.append)

    output = "\n".join(lines)
    assert code == 0, output
    assert output.count("measured split matches") == 4, output  # steps 1 and 2 once, step 3 for jason and others
    assert "All measured splits match their rules." in output
    assert "mutual TLS enforced" in output
    assert "policy enforced" in output  # step 5: 403 from the DENY rule, 5 guests then 429s
    assert "end-user: guest x8 -> 200 200 200 200 200 429 429 429" in output
    assert "Requests Mixer recorded per edge" in output
    assert "Stopped Pilot, Citadel, Mixer and all sidecars." in output
    assert len([line for line in lines if line.startswith("Step ")]) == len(DEMO_STEPS) + 2
    for spec in DEMO_WORKLOADS:  # every sidecar is gone: its admin and proxy ports are free again
        address = f"{DEMO_SUBNET}.{spec.host}"
        assert port_free(address, 15000) and port_free(address, 15001), f"{spec.name}'s sidecar still running"
