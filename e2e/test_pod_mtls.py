"""Inbound capture and PeerAuthentication for pods, with Citadel: under a mesh-wide STRICT policy the productpage
pod's sidecar talks mutual TLS to the reviews pod's, while a plaintext connection from a network namespace on the
pod network without a sidecar (``stranger``) straight to the reviews pod IP:9080 is refused by the reviews sidecar
(its capture sends it to virtualInbound, which requires a client certificate); PERMISSIVE lets it in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e.mtls import peer_authentication as mesh_peer_authentication
from e2e.pod_mesh import REVIEWS_PORT, REVIEWS_URL, PodMesh, pod_mesh, registry_yaml
from e2e.pod_mtls import caller_identity
from e2e.pods import pod_get, why_pods_cannot_run
from e2e.rules import weighted_reviews
from envoy_bootstrap.bootstrap import XdsMode

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))


CLIENT_ID = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"


def peer_authentication(mode: str) -> str:  # mesh-wide, from the root namespace
    return mesh_peer_authentication(mode, namespace="istio-system")


async def test_strict_mtls_between_pods_works_and_refuses_plaintext_from_outside(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, peer_authentication("STRICT"), citadel=True) as mesh:
        meshed = mesh.get(REVIEWS_URL, 5)
        plaintext = pod_get(mesh.pod("stranger"), f"http://{mesh.addresses['reviews-v1']}:{REVIEWS_PORT}/", 2)
    assert [status for status, _ in meshed] == [200] * 5, meshed
    client_cert = json.loads(meshed[0][1])["headers"].get("x-forwarded-client-cert", "")
    assert "spiffe://cluster.local/ns/default/sa/bookinfo-productpage" in client_cert, meshed[0]
    assert [status for status, _ in plaintext] == [0, 0], plaintext  # reset by the sidecar: no client certificate


async def test_permissive_lets_plaintext_from_outside_the_mesh_in(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, peer_authentication("PERMISSIVE"), citadel=True) as mesh:
        meshed = mesh.get(REVIEWS_URL, 3)
        plaintext = pod_get(mesh.pod("stranger"), f"http://{mesh.addresses['reviews-v1']}:{REVIEWS_PORT}/", 2)
    assert [status for status, _ in meshed] == [200] * 3, meshed
    assert [status for status, _ in plaintext] == [200, 200], plaintext
    assert json.loads(plaintext[0][1])["version"] == "v1"


async def test_disable_is_plaintext_between_pods(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, peer_authentication("DISABLE"), citadel=True) as mesh:
        meshed = mesh.get(REVIEWS_URL, 3)
        plaintext = pod_get(mesh.pod("stranger"), f"http://{mesh.addresses['reviews-v1']}:{REVIEWS_PORT}/", 2)
    assert [status for status, _ in meshed] == [200] * 3, meshed
    assert all("x-forwarded-client-cert" not in json.loads(body)["headers"] for _, body in meshed), meshed[0]
    assert [status for status, _ in plaintext] == [200, 200], plaintext


def _registry_with_reviews_tls(mesh: PodMesh, mode: str) -> str:
    """The pod mesh's registry with ``trafficPolicy.tls.mode`` set on the reviews DestinationRule."""
    text = registry_yaml(mesh.addresses)
    marker = "  host: reviews\n  subsets:"
    assert marker in text
    return text.replace(marker, f"  host: reviews\n  trafficPolicy:\n    tls:\n      mode: {mode}\n  subsets:")


@pytest.mark.parametrize("xds_mode", ["sotw", "delta"])
async def test_destination_rule_tls_overrides_auto_mtls(tmp_path: Path, xds_mode: XdsMode) -> None:
    """Each step changes the DestinationRule, so the client's cluster (and its connection pool) is new: a server's
    mode change alone would leave already-open connections draining gracefully, as Envoy does."""
    rules = "---\n".join([peer_authentication("STRICT"), weighted_reviews(v1=100)])
    async with pod_mesh(tmp_path, rules, citadel=True, xds_mode=xds_mode) as mesh:
        await mesh.config.apply("00-registry", _registry_with_reviews_tls(mesh, "DISABLE"))
        configz = await mesh.config.wait_synced()
        refused = mesh.get(REVIEWS_URL)

        await mesh.config.apply("00-registry", _registry_with_reviews_tls(mesh, "ISTIO_MUTUAL"))
        await mesh.config.wait_synced()
        mutual = mesh.get(REVIEWS_URL)

        await mesh.config.apply("10-rules", "---\n".join([peer_authentication("PERMISSIVE"), weighted_reviews(v1=100)]))
        await mesh.config.apply("00-registry", _registry_with_reviews_tls(mesh, "DISABLE"))
        await mesh.config.wait_synced()
        plaintext = mesh.get(REVIEWS_URL)

    assert not configz["rejected"], configz["rejected"]
    assert refused[0][0] == 503, f"tls DISABLE: a plaintext client meets a STRICT server: {refused}"
    assert mutual[0][0] == 200 and caller_identity(mutual[0][1]) == CLIENT_ID, mutual
    assert plaintext[0][0] == 200, plaintext
    assert caller_identity(plaintext[0][1]) is None, "tls DISABLE: the client sends plaintext"
