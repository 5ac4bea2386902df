"""Inbound capture and PeerAuthentication for pods, with Citadel: under a mesh-wide STRICT policy the productpage
pod's sidecar talks mutual TLS to the reviews pod's, while a plaintext connection from a network namespace on the
pod network without a sidecar (``stranger``) straight to the reviews pod IP:9080 is refused by the reviews sidecar
(its capture sends it to virtualInbound, which requires a client certificate); PERMISSIVE lets it in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e.pod_mesh import REVIEWS_PORT, REVIEWS_URL, pod_mesh
from e2e.pods import pod_get, why_pods_cannot_run

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))


def peer_authentication(mode: str) -> str:
    return (
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        "metadata:\n  name: default\n  namespace: istio-system\n"
        f"spec:\n  mtls:\n    mode: {mode}\n"
    )


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
