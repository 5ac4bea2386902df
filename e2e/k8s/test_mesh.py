"""The mesh scenarios on a real Kubernetes (issue 11, "Tests on real Kubernetes"): meshplane installed with
``kubectl apply -k``, Istio's bookinfo-format workloads in an injected namespace, Istio's YAML applied with
``kubectl apply``, real requests from productpage's pod. The same code runs on the local cluster (``make test``)
and on kind (``make kind-e2e``): it takes only a kubeconfig.

- the demo's six steps (``e2e.demo_steps``, as ``meshplane demo`` runs them on pods and docker-compose): weighted
  split and header routing MEASURED, STRICT mutual TLS (a plaintext pod outside the mesh refused, productpage's
  SPIFFE identity seen by reviews), an AuthorizationPolicy DENY (403), a Mixer rate limit (429), TCP shifting;
- Istio's metrics with exact counts (``istio_requests_total`` from Mixer);
- a rejected VirtualService with its reason in ``status`` (``kubectl get vs -o yaml``), the last good one in force;
- a Pilot replica deleted under traffic: no request fails, the sidecars move to the other replica.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from e2e.demo_steps import ROUTE_CONFIG_NAME, run_demo_steps
from e2e.k8s.kube_mesh import APP_NAMESPACE, CONTROL_NAMESPACE, KubeMesh
from e2e.k8s.kube_support import eventually
from e2e.mesh_config import DEMO_ROUTE_FILES
from e2e.pod_mesh import REVIEWS_URL
from e2e.telemetry import RequestKey, istio_request_counts

REQUESTS = 100  # per measured split
INVALID_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
    mirror: {host: reviews, subset: v2}
    mirrorPercent: 5
"""


async def test_demo_steps_on_kubernetes(kube_mesh: KubeMesh) -> None:
    lines: list[str] = []
    ok = await run_demo_steps(kube_mesh, REQUESTS, lines.append)
    print("\n".join(lines))
    assert ok, "\n".join(lines)


def _productpage_to_reviews(metrics_text: str) -> dict[RequestKey, int]:
    """``istio_requests_total`` of productpage's requests as the reviews sidecars reported them."""
    return {
        key: count
        for key, count in istio_request_counts(metrics_text).items()
        if key.reporter == "destination"
        and key.destination_workload.startswith("reviews-")
        and key.source_workload.startswith("productpage")
    }


async def test_istio_metrics_count_every_request_exactly(kube_mesh: KubeMesh) -> None:
    """37 requests, 37 counted, with Istio's workload labels of Kubernetes: the Deployment's name and version."""
    before = _productpage_to_reviews(await kube_mesh.mixer_metrics())
    sent = await kube_mesh.responses(REVIEWS_URL, 37, headers={"end-user": "metrics"})
    assert [r.status for r in sent] == [200] * 37
    await asyncio.sleep(1.0)  # sidecars flush their access logs to Mixer every 250 ms
    after = _productpage_to_reviews(await kube_mesh.mixer_metrics())
    grown = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    [(key, count)] = grown.items()
    assert count == 37
    assert (key.source_workload, key.response_code) == ("productpage-v1", "200")
    assert key.destination_workload == f"reviews-{key.destination_version}"


async def test_rejected_virtual_service_has_its_reason_in_status(kube_mesh: KubeMesh, tmp_path: Path) -> None:
    invalid = tmp_path / "reviews-invalid.yaml"
    invalid.write_text(INVALID_VS)
    await kube_mesh.kubectl.arun("apply", "-f", str(invalid))

    def status_messages() -> list[str] | None:
        vs = kube_mesh.kubectl.json("get", "virtualservice", "reviews", "-n", APP_NAMESPACE)
        messages = [m.get("description", "") for m in (vs.get("status") or {}).get("validationMessages", ())]
        return messages or None

    messages = await asyncio.to_thread(eventually, "the VirtualService's status", status_messages, 60.0)
    assert any("mirrorPercent" in m and "not supported by meshplane yet" in m for m in messages), messages
    # the last good rule stays in force: reviews still answers
    assert (await kube_mesh.request(REVIEWS_URL)).status == 200
    # fixed again (the demo's last rule): the status is cleared. And a replica started while the object is invalid
    # would have no last good version of it: only the processes that read the good one keep it (see the note in
    # README's "Not done yet on Kubernetes"), so the scenarios after this one start from a valid object again.
    await kube_mesh.apply(ROUTE_CONFIG_NAME, DEMO_ROUTE_FILES[-1])
    await asyncio.to_thread(eventually, "the status cleared", lambda: None if status_messages() else True, 60.0)


async def test_pilot_replica_deleted_under_traffic_fails_no_request(kube_mesh: KubeMesh) -> None:
    """The replica productpage's sidecar is connected to is deleted while productpage sends 300 requests: every one
    is answered (Envoy keeps its config), the sidecar reconnects to the other replica through the Service, and the
    Deployment replaces the deleted one."""
    node_id = kube_mesh.node_ids()[kube_mesh.workload_pod("productpage")["metadata"]["name"]]
    pilots = await asyncio.to_thread(kube_mesh.pilot_pods)
    assert len(pilots) >= 2, "the manifests run two Pilot replicas"

    def serves_productpage(pod: dict[str, Any]) -> bool:
        """Whether productpage's Envoy has its ADS stream on this replica (its DNS agent's name-table stream may be
        on the other one)."""
        streams = kube_mesh.pilot_json(pod, "/debug/syncz").get("proxies", ())
        return any(p.get("id") == node_id and "lds" in p.get("types", {}) for p in streams)

    [victim] = [pod["metadata"]["name"] for pod in pilots if await asyncio.to_thread(serves_productpage, pod)]
    traffic = asyncio.create_task(kube_mesh.responses(REVIEWS_URL, 300, headers={"end-user": "failover"}))
    await asyncio.sleep(2.0)
    await kube_mesh.kubectl.arun("delete", "pod", "-n", CONTROL_NAMESPACE, victim, "--wait=false")
    responses = await traffic
    assert [r.status for r in responses] == [200] * len(responses)

    def replaced() -> bool | None:
        names = {p["metadata"]["name"] for p in kube_mesh.pilot_pods()}
        return True if len(names) >= 2 and victim not in names else None

    await asyncio.to_thread(eventually, "a new Pilot replica", replaced, 120.0)
    await kube_mesh.wait_synced()  # every sidecar is connected to a live replica and ACKed
    survivors = await asyncio.to_thread(kube_mesh.pilot_pods)
    assert any([await asyncio.to_thread(serves_productpage, pod) for pod in survivors])
