"""PERMISSIVE with an app that serves TLS itself, in pods with Citadel (``e2e.pod_mesh``, ``e2e.l4_apps``' apps).

Under a mesh-wide PERMISSIVE policy, the ``login`` pod's app serves TLS on its own port 8443 (ServiceEntry
``login.bookinfo.com``, port 443 ``TLS``, targetPort 8443) with a certificate made by the test. The ``login`` sidecar
tells callers apart as Istio does, by the ALPN of the ClientHello:

- ``stranger``, a network namespace outside the mesh (no sidecar), opens its own TLS straight to the pod IP:8443
  without the mesh ALPN: the sidecar passes it through to the app as TCP, and the caller verifies the app's own
  certificate (before, the sidecar's mTLS chain took every TLS handshake and this failed);
- ``productpage``'s app opens TLS to ``login.bookinfo.com:443`` through its sidecar, which wraps it in mutual TLS
  offering ``istio``: the login sidecar terminates the mTLS, the app's TLS inside reaches the app unchanged;
- the mesh's HTTP port still gets mutual TLS from a mesh client: the reviews app sees the caller's SPIFFE ID in
  ``x-forwarded-client-cert``; the stranger's TLS to that HTTP port matches no chain and is closed, as in Istio
  (no plain-TLS chain on a port declared HTTP)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from e2e.l4_apps import make_certificates, tls_hellos, tls_server_command
from e2e.l4_mesh import TLS_APP_PORT, TLS_PORT, apply, settle, start_pods, tls_services
from e2e.mtls import peer_authentication
from e2e.pod_mesh import REVIEWS_PORT, REVIEWS_URL, pod_mesh
from e2e.pods import why_pods_cannot_run

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

LOGIN = "login.bookinfo.com"


async def test_permissive_passes_an_apps_own_tls_from_outside_and_keeps_mtls_for_the_mesh(tmp_path: Path) -> None:
    certificates = make_certificates([LOGIN])
    ca = certificates.ca_pem
    async with pod_mesh(tmp_path, peer_authentication("PERMISSIVE", namespace="istio-system"), citadel=True) as mesh:
        app = tls_server_command("login", TLS_APP_PORT, *certificates.leaves[LOGIN])
        entries = await start_pods(mesh, {"login": (app, "app=login", "login")})
        apply(mesh, "login", f"{tls_services([LOGIN])}---\n{entries}")
        stranger = mesh.pod("stranger")
        login_ip = mesh.addresses["login"]
        from_mesh = await settle(
            lambda: tls_hellos(mesh.client, LOGIN, TLS_PORT, LOGIN, ca, 3),
            lambda r: r == [(LOGIN, "login")] * 3,
            mesh,
            "login not reached from the mesh",
        )
        from_outside = await asyncio.to_thread(tls_hellos, stranger, login_ip, TLS_APP_PORT, LOGIN, ca, 3)
        http_from_mesh = mesh.get(REVIEWS_URL, 3)
        tls_to_http_port = await asyncio.to_thread(
            tls_hellos, stranger, mesh.addresses["reviews-v1"], REVIEWS_PORT, LOGIN, ca, 2
        )
    assert from_mesh == [(LOGIN, "login")] * 3
    assert from_outside == [(LOGIN, "login")] * 3, from_outside  # the app's own certificate, through the sidecar
    assert [status for status, _ in http_from_mesh] == [200] * 3, http_from_mesh
    client_cert = json.loads(http_from_mesh[0][1])["headers"].get("x-forwarded-client-cert", "")
    assert "spiffe://cluster.local/ns/default/sa/bookinfo-productpage" in client_cert, http_from_mesh[0]
    assert [cn for cn, _ in tls_to_http_port] == ["error", "error"], tls_to_http_port
