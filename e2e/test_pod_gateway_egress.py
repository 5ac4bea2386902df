"""Istio's "Egress Gateways" task in pods, under MeshConfig ``outboundTrafficPolicy: REGISTRY_ONLY``: the
productpage pod's app calls ``http://edition.cnn.com/politics``, a plain HTTP server (``e2e.pod_app`` on :80) in a
network namespace outside the mesh that the pods' upstream DNS resolves. The egress gateway is a gateway namespace
(``envoy-bootstrap run gateway``, labels ``istio=egressgateway``) registered as the workload of the service
``istio-egressgateway.istio-system.svc.cluster.local`` (``e2e.pod_gateway.gateway_service_yaml``: the docs'
``istio-egressgateway`` Service). The YAML is the docs' (``e2e/istio_docs/egress-gateway``), applied step by step.

Proven, through the address the server saw the request come from (``peer``) and the gateway's Envoy stats:
- REGISTRY_ONLY with nothing registered for the host: the sidecar answers 502, the server is never reached;
- the docs' ServiceEntry alone: the sidecar reaches the server itself (peer: the productpage pod);
- with the docs' Gateway, DestinationRule and VirtualService: every request reaches the server from the egress
  gateway's address, and the gateway's cluster ``outbound|80||edition.cnn.com`` counts them;
- the VirtualService removed: the sidecar goes direct again (the route through the gateway is only the VS's)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from e2e.pod_gateway import DOCS_DIR, EGRESS_LABELS, gateway_service_yaml, gateway_stat, run_gateway
from e2e.pod_mesh import PodMesh, pod_mesh
from e2e.pods import app_server_command, why_pods_cannot_run
from e2e.traffic import MeshResponse

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

CNN = "edition.cnn.com"
URL = f"http://{CNN}/politics"
DOCS = DOCS_DIR / "egress-gateway"
REGISTRY_ONLY = "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"
GATEWAY_CLUSTER_REQUESTS = f"cluster.outbound|80||{CNN}.upstream_rq_200"
_SETTLE_SECONDS = 30.0


def _docs(*names: str) -> str:
    return "\n---\n".join((DOCS / name).read_text() for name in names)


def _peers(responses: list[MeshResponse]) -> list[object]:
    return [(r.status, r.body["peer"] if r.body is not None else r.text[:200]) for r in responses]


async def _until_peers(mesh: PodMesh, expected: list[object], what: str) -> list[MeshResponse]:
    deadline = asyncio.get_running_loop().time() + _SETTLE_SECONDS
    while True:
        responses = await mesh.responses(URL, len(expected))
        if _peers(responses) == expected:
            return responses
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: {_peers(responses)}\n{mesh.log_tails()}")
        await asyncio.sleep(0.5)


async def test_sidecars_reach_an_external_service_only_through_the_egress_gateway(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, mesh_config=REGISTRY_ONLY, dns_names={CNN: "external"}) as mesh:
        await mesh.run_plain("external", app_server_command(CNN, "none", 80), uid=None)
        await mesh.config.apply("05-egressgateway-service", gateway_service_yaml(mesh))
        async with run_gateway(mesh, "egressgateway", EGRESS_LABELS, workload="istio-egressgateway"):
            await mesh.config.wait_synced()
            refused = await mesh.responses(URL, 3)
            assert [r.status for r in refused] == [502] * 3, _peers(refused)  # REGISTRY_ONLY: not in the registry

            await mesh.config.apply("10-cnn", _docs("01-service-entry.yaml"))
            direct = await _until_peers(mesh, [(200, mesh.addresses["productpage"])] * 3, "direct via ServiceEntry")
            assert direct[0].body is not None and direct[0].body["path"] == "/politics"
            assert await asyncio.to_thread(gateway_stat, mesh, "egressgateway", GATEWAY_CLUSTER_REQUESTS) == 0

            await mesh.config.apply("20-egress-gateway", _docs("02-gateway.yaml", "03-virtual-service.yaml"))
            configz = await mesh.config.wait_synced()
            assert configz.get("rejected", []) == [], configz["rejected"]
            gateway = mesh.addresses["egressgateway"]
            await _until_peers(mesh, [(200, gateway)] * 3, "through the egress gateway")
            before = await asyncio.to_thread(gateway_stat, mesh, "egressgateway", GATEWAY_CLUSTER_REQUESTS)
            via = await mesh.responses(URL, 5)
            assert _peers(via) == [(200, gateway)] * 5
            after = await asyncio.to_thread(gateway_stat, mesh, "egressgateway", GATEWAY_CLUSTER_REQUESTS)
            assert after - before == 5, (before, after)

            await mesh.config.remove("20-egress-gateway")
            await _until_peers(mesh, [(200, mesh.addresses["productpage"])] * 3, "direct again without the VS")
