"""AUTO_PASSTHROUGH through a real east-west gateway pod (``e2e.pod_gateway``: ``envoy-bootstrap run gateway``,
labels ``istio=eastwestgateway``) with the Gateway of Istio's multicluster docs (``e2e/istio_docs/
multicluster-expose-services``: port 15443, ``*.local``), under mesh-wide STRICT mTLS with Citadel.

The productpage pod's sidecar reaches reviews the way a sidecar of another network does, through the gateway: a
ServiceEntry ``reviews.network2.global`` whose endpoint is the gateway's 15443, and a DestinationRule with Istio
mutual TLS whose SNI names the SNI-DNAT cluster ``outbound_.9080_.v2_.reviews.default.svc.cluster.local`` (and
the reviews identity as the server's SAN). No VirtualService routes anything on the gateway. Proven:

- every request answers from reviews v2 (the subset the SNI names), and the reviews sidecar saw productpage's
  client certificate (its ``x-forwarded-client-cert``): mutual TLS from sidecar to sidecar, the gateway decrypting
  nothing; the gateway's SNI-DNAT cluster counted the connections;
- a TLS client that is not a mesh sidecar (no Istio ALPN), with the same SNI, is closed by the gateway.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e.l4_apps import make_certificates
from e2e.mtls import peer_authentication
from e2e.pod_gateway import docs_config, gateway_stat, https_get, run_gateway, wait_for
from e2e.pod_mesh import REVIEWS_PORT, PodMesh, pod_mesh
from e2e.pod_mtls import caller_identity
from e2e.pods import why_pods_cannot_run

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

GATEWAY = "eastwestgateway"
LABELS = {"istio": "eastwestgateway"}
SNI = f"outbound_.{REVIEWS_PORT}_.v2_.reviews.default.svc.cluster.local"
REMOTE = "reviews.network2.global"
URL = f"http://{REMOTE}:{REVIEWS_PORT}/"
CLIENT_ID = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
UNMATCHED = "listener.0.0.0.0_15443.no_filter_chain_match"  # Envoy's count of connections no chain took


def _through_the_gateway(mesh: PodMesh) -> str:
    """reviews as a sidecar of another network sees it: behind the east-west gateway's 15443, Istio mTLS by SNI."""
    return f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews-network2, namespace: default}}
spec:
  hosts: [{REMOTE}]
  location: MESH_INTERNAL
  ports: [{{number: {REVIEWS_PORT}, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: {mesh.addresses[GATEWAY]}, ports: {{http: 15443}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews-network2, namespace: default}}
spec:
  host: {REMOTE}
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
      sni: {SNI}
      subjectAltNames: [spiffe://cluster.local/ns/default/sa/bookinfo-reviews]
"""


async def test_sidecar_mtls_reaches_the_service_the_sni_names_through_the_gateway(tmp_path: Path) -> None:
    config = (
        peer_authentication("STRICT", namespace="istio-system") + "---\n" + docs_config("multicluster-expose-services")
    )
    async with (
        pod_mesh(tmp_path, config, citadel=True) as mesh,
        run_gateway(mesh, GATEWAY, LABELS, workload="istio-eastwestgateway"),
    ):
        await mesh.config.apply("20-network2", _through_the_gateway(mesh))
        await mesh.config.wait_synced()
        await wait_for(lambda: mesh.get(URL)[0][0], lambda status: status == 200, mesh, "through the gateway")

        answers = mesh.get(URL, 10)
        assert [status for status, _ in answers] == [200] * 10, answers
        assert {json.loads(body)["version"] for _, body in answers} == {"v2"}, answers
        assert caller_identity(answers[0][1]) == CLIENT_ID, answers[0]  # the reviews sidecar checked productpage
        connections = gateway_stat(mesh, GATEWAY, f"cluster.{SNI}.upstream_cx_total")
        assert connections >= 1, connections

        outsider = make_certificates(["reviews.default.svc.cluster.local"]).ca_pem
        before = gateway_stat(mesh, GATEWAY, UNMATCHED)
        status, error = https_get(mesh.pod("stranger"), mesh.addresses[GATEWAY], 15443, SNI, "/", outsider)
        assert status == 0, error
        assert gateway_stat(mesh, GATEWAY, UNMATCHED) == before + 1, error  # no Istio mTLS ALPN: no chain took it
