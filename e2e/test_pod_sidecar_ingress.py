"""A Sidecar's ``ingress`` listener in pods: ``details`` (a ServiceEntry port 9080 for the pod's workload) runs its
app on 9090, not on the service's target port, so productpage's requests to ``details:9080`` fail (503) until a
Sidecar selecting it declares the ingress port 9080 with ``defaultEndpoint: 127.0.0.1:9090`` (the pod's loopback)
and then ``0.0.0.0:9090`` (the pod's IP); removing the Sidecar fails them again. Its ``inboundConnectionPool``
(one connection, one pending request) makes the details sidecar shed concurrent slow requests with 503s.

An ingress listener's ``tls``: with details' PeerAuthentication DISABLE, its sidecar terminates HTTPS on 9443 with
the listener's certificate files for ``stranger`` (outside the mesh) and hands plain HTTP to the app on 127.0.0.1;
plaintext to 9443 matches no chain. Under PERMISSIVE Istio keeps its mTLS chains and ignores the listener's tls:
the TLS handshake then reaches the plain-HTTP app and fails."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.l4_apps import make_certificates
from e2e.pod_gateway import https_get, wait_for
from e2e.pod_mesh import NAMESPACE, PodMesh, pod_mesh
from e2e.pods import app_server_command, pod_get, why_pods_cannot_run
from meshplane.names import PROXY_UID

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

DETAILS_URL = "http://details:9080/"
DETAILS_HOST = f"details.{NAMESPACE}.svc.cluster.local"
APP_PORT = 9090
_WAIT_SECONDS = 30.0


def _details(mesh: PodMesh) -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: details
  namespace: {NAMESPACE}
spec:
  hosts: [details.{NAMESPACE}.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  resolution: STATIC
  workloadSelector:
    labels: {{app: details}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: details
  namespace: {NAMESPACE}
spec:
  address: {mesh.addresses["details"]}
  serviceAccount: bookinfo-details
  labels: {{app: details}}
"""


def _sidecar(port: Mapping[str, Any] | None = None, **ingress: Any) -> str:
    listener = {"port": dict(port or {"number": 9080, "protocol": "HTTP", "name": "somename"}), **ingress}
    spec: Mapping[str, Any] = {"workloadSelector": {"labels": {"app": "details"}}, "ingress": [listener]}
    document = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Sidecar",
        "metadata": {"name": "details", "namespace": NAMESPACE},
    }
    return yaml.safe_dump({**document, "spec": spec}, sort_keys=False)


async def _statuses(mesh: PodMesh, url: str = DETAILS_URL, count: int = 4) -> list[int]:
    return [response.status for response in await mesh.responses(url, count)]


async def _until(mesh: PodMesh, wanted: list[int], url: str = DETAILS_URL) -> None:
    deadline = asyncio.get_running_loop().time() + _WAIT_SECONDS
    last: list[int] = []
    while asyncio.get_running_loop().time() < deadline:
        last = await _statuses(mesh, url, len(wanted))
        if last == wanted:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{url}: {last}, wanted {wanted}\n{mesh.log_tails()}")


async def test_an_ingress_listener_reaches_an_app_off_the_service_port(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, versions=("v1",)) as mesh:
        await mesh.config.apply("20-details", _details(mesh))
        app = app_server_command("details", "v1", APP_PORT)
        await mesh.run_pod("details", app, service_account="bookinfo-details", labels="app=details")
        await mesh.config.wait_synced()
        await _until(mesh, [503] * 4)  # the details sidecar forwards to :9080, where nothing listens

        await mesh.config.apply("30-sidecar", _sidecar(defaultEndpoint=f"127.0.0.1:{APP_PORT}"))
        configz = await mesh.config.wait_synced()
        assert configz["rejected"] == [], configz["rejected"]
        await _until(mesh, [200] * 4)
        [answer] = await mesh.responses(DETAILS_URL)
        assert answer.body is not None and answer.body["service"] == "details"
        assert answer.body["peer"] == "127.0.0.1"  # the sidecar over the pod's loopback

        await mesh.config.apply("30-sidecar", _sidecar(defaultEndpoint=f"0.0.0.0:{APP_PORT}"))
        await mesh.config.wait_synced()
        await _until(mesh, [200] * 4)
        [answer] = await mesh.responses(DETAILS_URL)
        assert answer.body is not None and answer.body["peer"] == "127.0.0.6"  # to the pod's IP, from 127.0.0.6

        await mesh.config.remove("30-sidecar")
        await mesh.config.wait_synced()
        await _until(mesh, [503] * 4)

        # Istio 1.22's inboundConnectionPool on the details sidecar's inbound cluster: 1 connection, 1 pending
        slow = "http://details:9080/delay/1500"
        pool = {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}
        await mesh.config.apply("30-sidecar", _sidecar(defaultEndpoint=f"127.0.0.1:{APP_PORT}"))
        await mesh.config.wait_synced()
        await _until(mesh, [200] * 4)
        assert [r.status for r in await mesh.responses(slow, 6, concurrency=6)] == [200] * 6  # no pool: all pass
        with_pool = yaml.safe_load(_sidecar(defaultEndpoint=f"127.0.0.1:{APP_PORT}"))
        with_pool["spec"]["inboundConnectionPool"] = pool
        await mesh.config.apply("30-sidecar", yaml.safe_dump(with_pool, sort_keys=False))
        await mesh.config.wait_synced()
        statuses = sorted(r.status for r in await mesh.responses(slow, 6, concurrency=6))
        assert 200 in statuses and 503 in statuses, statuses  # two at a time at most; the rest overflow


def _peer_authentication(mode: str) -> str:
    return f"""\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: details
  namespace: {NAMESPACE}
spec:
  selector:
    matchLabels: {{app: details}}
  mtls: {{mode: {mode}}}
"""


@contextlib.contextmanager
def _proxy_readable_certificate(certificate: str, key: str) -> Iterator[tuple[str, str]]:
    """The server's certificate and key as files the pod's Envoy (uid PROXY_UID) can read; removed after."""
    directory = tempfile.mkdtemp(prefix="meshplane-ingress-tls-")
    try:
        os.chmod(directory, 0o755)
        paths = (os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key"))
        for path, text in zip(paths, (certificate, key), strict=True):
            with open(path, "w") as file:
                file.write(text)
            os.chown(path, PROXY_UID, PROXY_UID)
            os.chmod(path, 0o400)
        yield paths
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def test_an_ingress_listener_terminates_its_tls_where_mtls_is_disabled(tmp_path: Path) -> None:
    certificates = make_certificates([DETAILS_HOST])
    certificate, key = certificates.leaves[DETAILS_HOST]
    with _proxy_readable_certificate(certificate, key) as (certificate_file, key_file):
        async with pod_mesh(tmp_path, versions=("v1",), clients=()) as mesh:
            await mesh.config.apply("20-details", _details(mesh) + "---\n" + _peer_authentication("DISABLE"))
            app = app_server_command("details", "v1", APP_PORT)
            await mesh.run_pod("details", app, service_account="bookinfo-details", labels="app=details")
            tls = {"mode": "SIMPLE", "serverCertificate": certificate_file, "privateKey": key_file}
            https = {"number": 9443, "protocol": "HTTPS", "name": "https"}
            await mesh.config.apply("30-sidecar", _sidecar(https, defaultEndpoint=f"127.0.0.1:{APP_PORT}", tls=tls))
            configz = await mesh.config.wait_synced()
            assert configz["rejected"] == [], configz["rejected"]
            stranger, details = mesh.pod("stranger"), mesh.addresses["details"]

            def call() -> tuple[int, str]:
                return https_get(stranger, details, 9443, DETAILS_HOST, "/", certificates.ca_pem)

            _, body = await wait_for(call, lambda r: r[0] == 200, mesh, "HTTPS terminated by the details sidecar")
            assert '"service": "details"' in body and '"peer": "127.0.0.1"' in body
            [(status, _)] = await asyncio.to_thread(pod_get, stranger, f"http://{details}:9443/")
            assert status == 0  # plaintext matches no chain of the port: the connection is closed

            await mesh.config.apply("20-details", _details(mesh) + "---\n" + _peer_authentication("PERMISSIVE"))
            await mesh.config.wait_synced()
            await wait_for(call, lambda r: r[0] == 0, mesh, "PERMISSIVE: Istio's mTLS chains, the tls ignored")
