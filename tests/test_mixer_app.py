"""MixerServer puts config in force off the event loop, coalescing bursts, and says which version is in force."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mixer import app as mixer_app
from mixer.app import MixerOptions, MixerServer
from pilot.config import ConfigStore, parse_config_text
from pilot.kube import KubernetesRegistry
from pilot.model import SERVICE_ENTRIES, MeshSnapshot, build_snapshot
from tests import kube_builders as kb

ENTRY = """\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: w{n}, namespace: default}}
spec: {{address: 127.0.9.{n}, labels: {{app: w}}}}
"""


def _add(store: ConfigStore, n: int) -> None:
    assert store.apply([parse_config_text(ENTRY.format(n=n), f"w{n}.yaml")]) is not None


async def test_updates_are_applied_off_the_loop_and_coalesced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []

    def counting_build(configs: Any, version: int, *args: Any, **kwargs: Any) -> MeshSnapshot:
        built.append(version)
        return build_snapshot(configs, version, *args, **kwargs)

    monkeypatch.setattr(mixer_app, "build_snapshot", counting_build)
    store = ConfigStore()
    mixer = MixerServer(MixerOptions(config_dir=tmp_path))
    try:
        await mixer.load(store)
        assert mixer.in_force_version == store.version == 0
        for n in range(1, 6):  # a burst: one update call per change, on the loop
            _add(store, n)
            mixer.update(store)
        assert mixer.in_force_version == 0  # nothing built on the loop: update returned at once
        for _ in range(100):
            if mixer.in_force_version == store.version:
                break
            await asyncio.sleep(0.01)
        assert mixer.in_force_version == store.version == 5
        assert mixer.engine.registry.workload_at("127.0.9.5") is not None
        assert built == [0, 5]  # five changes before the loop ran the update: one build, of the latest
    finally:
        await mixer.stop()


async def test_the_kubernetes_registry_is_in_mixers_snapshots() -> None:
    """Mixer with a cluster: its pods are the workloads checks and telemetry find by address and node id."""
    kube = KubernetesRegistry()
    kube.replace("Pod", [kb.pod("reviews-v1-7d8f9c6b5-abcde", "10.244.0.12")])
    mixer = MixerServer(MixerOptions(), registries=(SERVICE_ENTRIES, kube))
    try:
        await mixer.load(ConfigStore())
        workload = mixer.engine.registry.workload_entry_at("10.244.0.12")
        assert workload is not None and workload.meta.key.kind == "Pod"
        assert mixer.engine.registry.workload_named("bookinfo", "reviews-v1-7d8f9c6b5-abcde") is not None
    finally:
        await mixer.stop()
