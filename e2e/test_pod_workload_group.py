"""WorkloadGroup auto-registration through real Envoy sidecars in pods (``e2e.pod_mesh``, a world of its own: Pilot
with a 2 s ``--workload-entry-grace-period``): a pod whose sidecar connects with Istio's ``AUTO_REGISTER_GROUP``
node metadata (``meshplane pod run --node-metadata``), and no WorkloadEntry of its own in the config, becomes an
endpoint of the ServiceEntry that selects the group's labels, reached by the productpage pod; once it stops, its
WorkloadEntry is gone after the grace period."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from e2e.pod_mesh import NAMESPACE, REVIEWS_PORT, PodMesh, pod_mesh
from e2e.pods import app_server_command, why_pods_cannot_run

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

GRACE_SECONDS = 2.0
DETAILS_URL = f"http://details:{REVIEWS_PORT}/"
GROUP_AND_SERVICE = f"""\
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: details
  namespace: {NAMESPACE}
spec:
  metadata:
    labels:
      app: details
  template:
    serviceAccount: bookinfo-details
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: details
  namespace: {NAMESPACE}
spec:
  hosts: [details.{NAMESPACE}.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: {REVIEWS_PORT}, name: http, protocol: HTTP}}]
  resolution: STATIC
  workloadSelector:
    labels: {{app: details}}
"""


async def _workload_entries(mesh: PodMesh) -> set[str]:
    return {a["name"] for a in (await mesh.pilot.configz())["accepted"] if a["kind"] == "WorkloadEntry"}


async def _statuses(mesh: PodMesh, count: int = 3) -> list[int]:
    return [r.status for r in await mesh.responses(DETAILS_URL, count)]


async def test_an_auto_registered_pod_serves_its_group_until_the_grace_period_after_it_stops(tmp_path: Path) -> None:
    grace = ("--workload-entry-grace-period", f"{GRACE_SECONDS:g}s")
    async with pod_mesh(tmp_path, GROUP_AND_SERVICE, pilot_arguments=grace) as mesh:
        entry = f"details-{mesh.addresses['details']}"
        before = await _statuses(mesh)
        assert entry not in await _workload_entries(mesh)

        app = app_server_command("details", "v1", REVIEWS_PORT)
        metadata = {"AUTO_REGISTER_GROUP": "details"}
        await mesh.run_pod("details", app, service_account="bookinfo-details", labels="", node_metadata=metadata)
        await mesh.config.wait_synced()
        registered = await _workload_entries(mesh)
        deadline = time.monotonic() + 20
        while (served := await mesh.responses(DETAILS_URL, 3)) and any(r.status != 200 for r in served):
            assert time.monotonic() < deadline, (served, mesh.log_tails())
            await asyncio.sleep(0.5)

        stopping = time.monotonic()
        exit_code = await mesh.pods["details"].stop()
        while entry in await _workload_entries(mesh):
            assert time.monotonic() < stopping + GRACE_SECONDS + 15, "auto-registered entry never removed"
            await asyncio.sleep(0.2)
        removed_after = time.monotonic() - stopping
        after = await _statuses(mesh)

    assert 200 not in before, before
    assert entry in registered, registered
    assert {r.body["service"] for r in served if r.body is not None} == {"details"}, served
    assert exit_code is not None
    assert removed_after >= GRACE_SECONDS, f"removed {removed_after:.1f}s after the pod began to stop"
    assert 200 not in after, after
