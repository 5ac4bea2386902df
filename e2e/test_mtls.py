"""Mutual TLS between loopback sidecars with identities from Citadel: what is not yet moved to pods. STRICT,
PERMISSIVE and DISABLE, certificate and root rotation under traffic, Citadel down and a forged token run in pods
(``e2e/test_pod_mtls.py``, ``e2e/test_pod_identity.py``); the DestinationRule ``tls`` override of auto mTLS, in both
xDS modes, is still here."""

from __future__ import annotations

import pytest

from e2e.harness import DemoMeshFactory, LocalMesh
from e2e.mesh_config import DEMO_CLIENT, DEMO_URL, render_demo_mesh
from e2e.mtls import caller_identity, peer_authentication
from e2e.rules import weighted_reviews
from envoy_bootstrap.bootstrap import XdsMode

CLIENT_ID = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"


async def _route_to_v1(mesh: LocalMesh) -> None:
    await mesh.apply("reviews-vs", weighted_reviews(v1=100))
    await mesh.wait_synced()


def _mesh_with_reviews_tls(mesh: LocalMesh, mode: str) -> str:
    """The demo registry with ``trafficPolicy.tls.mode`` set on the reviews DestinationRule."""
    text = render_demo_mesh(mesh.subnet)
    marker = "  host: reviews\n  subsets:"
    assert marker in text
    return text.replace(marker, f"  host: reviews\n  trafficPolicy:\n    tls:\n      mode: {mode}\n  subsets:")


@pytest.mark.parametrize("xds_mode", ["sotw", "delta"])
async def test_destination_rule_tls_overrides_auto_mtls(mtls_mesh: DemoMeshFactory, xds_mode: XdsMode) -> None:
    """Each step changes the DestinationRule, so the client's cluster (and its connection pool) is new: a server's
    mode change alone would leave already-open connections draining gracefully, as Envoy does."""
    mesh = await mtls_mesh(xds_mode=xds_mode)
    await _route_to_v1(mesh)
    await mesh.apply("default-mtls", peer_authentication("STRICT"))
    await mesh.apply("reviews-mesh", _mesh_with_reviews_tls(mesh, "DISABLE"))
    configz = await mesh.wait_synced()
    assert not configz["rejected"], configz["rejected"]

    refused = await mesh.request(DEMO_CLIENT.name, DEMO_URL)
    assert refused.status == 503, "tls DISABLE: a plaintext client meets a STRICT server"

    await mesh.apply("reviews-mesh", _mesh_with_reviews_tls(mesh, "ISTIO_MUTUAL"))
    await mesh.wait_synced()
    mutual = await mesh.request(DEMO_CLIENT.name, DEMO_URL)
    assert mutual.status == 200 and caller_identity(mutual) == CLIENT_ID

    await mesh.apply("default-mtls", peer_authentication("PERMISSIVE"))
    await mesh.apply("reviews-mesh", _mesh_with_reviews_tls(mesh, "DISABLE"))
    await mesh.wait_synced()
    plaintext = await mesh.request(DEMO_CLIENT.name, DEMO_URL)
    assert plaintext.status == 200 and caller_identity(plaintext) is None, "tls DISABLE: the client sends plaintext"
