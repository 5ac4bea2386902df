"""``meshplane pod run`` end to end: a pod whose Envoy (uid 1337, INTERCEPTION_MODE=REDIRECT) reaches a real Pilot
through the relay into the pod, and whose teardown on SIGTERM leaves no netns, veth, bridge, rule or chain, also
when the signal arrives while the pod is still being set up."""

from __future__ import annotations

import asyncio
import signal
import sys
from asyncio.subprocess import Process
from pathlib import Path

import pytest

from agent.pod_network import PodAddress, PodNetwork, read_pod
from e2e.control_plane import PilotProcess
from e2e.harness import find_free_subnet
from e2e.pods import leftovers, new_state_dir, random_pod_network, why_pods_cannot_run

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))


def _pilot(tmp_path: Path) -> PilotProcess:
    subnet = find_free_subnet()
    (tmp_path / "config").mkdir()
    return PilotProcess(
        config_dir=tmp_path / "config",
        workdir=tmp_path,
        xds_address=f"{subnet}.2:15010",
        monitor_address=f"{subnet}.2:15014",
    )


async def _pod_run(pilot: PilotProcess, network: PodNetwork, state_dir: Path, name: str, pod_ip: str) -> Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "e2e.cli", "pod", "run", name, "--namespace", "pods", "--ip", pod_ip,
        "--pilot", pilot.xds_address, "--app-uid", "65534", "--pod-cidr", network.cidr, "--bridge", network.bridge,
        "--state-dir", str(state_dir), "--", "/bin/sleep", "600",
    )  # fmt: skip


async def test_pod_run_connects_envoy_to_pilot_and_leaves_nothing_behind(tmp_path: Path) -> None:
    pilot = _pilot(tmp_path)
    network = random_pod_network()
    state_dir = new_state_dir()
    name = "web"
    pod_ip = str(list(network.network.hosts())[4])
    await pilot.start()
    process = await _pod_run(pilot, network, state_dir, name, pod_ip)
    pod: PodAddress | None = None
    try:
        node_id = f"sidecar~{pod_ip}~{name}.pods~pods.svc.cluster.local"
        for _ in range(150):
            pod = pod or read_pod("pods", name, state_dir)
            if node_id in str(await pilot.syncz()):
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail(f"{node_id} never connected to Pilot: {await pilot.syncz()}\n{pilot.log_tail()}")
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 20)
        await pilot.stop()
    assert code == 128 + signal.SIGTERM
    assert pod is not None
    assert leftovers(network, [pod]) == []


async def test_a_pod_stopped_while_it_is_set_up_leaves_nothing_behind(tmp_path: Path) -> None:
    """SIGTERM as soon as the pod's state file appears: the namespace is being created, nothing runs yet."""
    pilot = _pilot(tmp_path)
    network = random_pod_network()
    state_dir = new_state_dir()
    pod_ip = str(list(network.network.hosts())[4])
    await pilot.start()
    process = await _pod_run(pilot, network, state_dir, "early", pod_ip)
    pod: PodAddress | None = None
    try:
        for _ in range(3000):
            pod = read_pod("pods", "early", state_dir)
            if pod is not None or process.returncode is not None:
                break
            await asyncio.sleep(0.005)
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 20)
        await pilot.stop()
    assert pod is not None, "the pod's state file never appeared"
    assert code == 128 + signal.SIGTERM
    assert leftovers(network, [pod]) == []
