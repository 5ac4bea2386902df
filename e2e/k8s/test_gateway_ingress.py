"""Istio's ingress tasks on Kubernetes, through the installed ``istio-ingressgateway`` Deployment (``meshplane-agent
gateway``, manifests/gateways.yaml) of the session's mesh (``kube_mesh``), called from outside the mesh: the
``stranger`` pod of the non-injected namespace ``outsider`` (no sidecar, no identity) dials the gateway Service's
ClusterIP with the task's Host, as a client outside the cluster reaches its LoadBalancer/NodePort.

- "Ingress Gateways" (``e2e/istio_docs/ingress-control``, ``kubectl apply``): ``/status`` and ``/delay`` of
  ``httpbin.example.com`` routed to the app on port 80 (Envoy listens on the Service's targetPort 8080); another
  path, or another Host, is 404 at the gateway;
- "Secure Gateways" (``e2e/istio_docs/secure-ingress``): ``kubectl create -n istio-system secret tls
  httpbin-credential --key --cert``, the Gateway's ``credentialName`` (SIMPLE on 443): the client verifies the
  served certificate for ``httpbin.example.com`` against the operator's CA; the Secret replaced by a certificate of
  another CA -> that one is served, with no gateway restart.

The docs' app is replaced by the demo's (``httpbin:8000`` -> ``reviews:9080``), as the files' comments say.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from e2e.k8s.kube_mesh import APP_NAMESPACE, CONTROL_NAMESPACE, OUTSIDER_NAMESPACE, KubeMesh
from tests.credential_builders import TestCA

DOCS_DIR = Path(__file__).parents[1] / "istio_docs"
HOST = "httpbin.example.com"
CREDENTIAL = "httpbin-credential"
GATEWAY_SELECTOR = "istio=ingressgateway"
APP_REPLACEMENTS = (("host: httpbin\n", "host: reviews\n"), ("number: 8000\n", "number: 9080\n"))
T = TypeVar("T")

# From the stranger pod: one HTTP/1.1 request to ADDRESS:PORT with the Host (over TLS with SNI HOST, verified with
# the CA given), printed as [status, body, SHA-256 of the certificate served]; [0, reason, ""] when it fails.
_REQUEST = r"""
import hashlib, json, socket, ssl, sys
address, port, path, host, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
try:
    sock = socket.create_connection((address, port), timeout=5)
    served = ""
    if ca:
        sock = ssl.create_default_context(cadata=ca).wrap_socket(sock, server_hostname=host)
        served = hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    print(json.dumps([int(head.split()[1]), body.decode(errors="replace"), served]))
except (OSError, ValueError, IndexError) as exc:
    print(json.dumps([0, f"{type(exc).__name__}: {exc}", ""]))
"""


def docs_file(task: str, directory: Path) -> Path:
    """The task's YAML (one file per task directory) with the docs' app replaced by the demo's."""
    [source] = sorted((DOCS_DIR / task).glob("*.yaml"))
    text = source.read_text()
    for old, new in APP_REPLACEMENTS:
        text = text.replace(old, new)
    target = directory / source.name
    target.write_text(text)
    return target


def outside_request(mesh: KubeMesh, port: int, path: str, host: str = HOST, ca: str = "") -> tuple[int, str, str]:
    """(status, body, served certificate's SHA-256) of a request from outside the mesh to the ingress Service."""
    address = mesh.kubectl.json("get", "service", "-n", CONTROL_NAMESPACE, "istio-ingressgateway")["spec"]["clusterIP"]
    stranger = mesh.pod(OUTSIDER_NAMESPACE, "app=stranger")["metadata"]["name"]
    stdout = mesh.kubectl.exec_python(
        OUTSIDER_NAMESPACE, stranger, "stranger", ["-c", _REQUEST, address, str(port), path, host, ca], timeout=30
    )
    status, body, served = json.loads(stdout)
    return int(status), str(body), str(served)


async def until(probe: Callable[[], T], done: Callable[[T], bool], what: str, timeout: float = 60.0) -> T:
    """``probe()`` (in a thread) until ``done`` says so; fails naming ``what`` and the last answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await asyncio.to_thread(probe)
        if done(found):
            return found
        if loop.time() > deadline:
            pytest.fail(f"{what}: not after {timeout:g}s, last {found!r}")
        await asyncio.sleep(0.5)


def gateway_pods(mesh: KubeMesh) -> list[tuple[str, int]]:
    """(name, restarts) of the ingress gateway's pods."""
    return [
        (pod["metadata"]["name"], sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses", ())))
        for pod in mesh.pods(CONTROL_NAMESPACE, GATEWAY_SELECTOR)
    ]


@pytest.fixture
def docs_config(kube_mesh: KubeMesh, tmp_path: Path) -> Iterator[Callable[[str], Any]]:
    """Applies a docs task's YAML in the app namespace (``kubectl apply``, until the mesh took it in); deletes every
    task applied, and the Secret of the credential, after the test."""
    applied: list[Path] = []

    async def apply(task: str) -> None:
        path = docs_file(task, tmp_path)
        applied.append(path)
        await kube_mesh.apply(task, path)

    yield apply
    for path in reversed(applied):
        kube_mesh.kubectl.run("delete", "-n", APP_NAMESPACE, "-f", str(path), "--ignore-not-found")
        kube_mesh.applied.pop(path.parent.name, None)
    kube_mesh.kubectl.run("delete", "secret", "-n", CONTROL_NAMESPACE, CREDENTIAL, "--ignore-not-found")


async def test_ingress_gateway_routes_requests_from_outside_by_host_and_path(
    kube_mesh: KubeMesh, docs_config: Callable[[str], Any]
) -> None:
    await docs_config("ingress-control")
    _, body, _ = await until(
        lambda: outside_request(kube_mesh, 80, "/status/418"), lambda r: r[0] == 418, "the gateway routes /status"
    )
    assert '"service": "reviews"' in body, body  # answered by the demo's reviews app, through its sidecar
    assert outside_request(kube_mesh, 80, "/delay/10")[0] == 200
    assert outside_request(kube_mesh, 80, "/headers")[0] == 404  # no route for the path on the gateway
    assert outside_request(kube_mesh, 80, "/status/200", host="other.example.com")[0] == 404  # no such virtual host


def _secret_tls(mesh: KubeMesh, directory: Path, ca: TestCA, name: str) -> Path:
    """``kubectl create secret tls`` of a new certificate of ``ca`` for the host, as a manifest (to create or
    replace the Secret with)."""
    credential = ca.issue([HOST])
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    key.write_bytes(credential.key_pem)
    cert.write_bytes(credential.chain_pem)
    manifest = mesh.kubectl.run(
        *("create", "secret", "tls", CREDENTIAL, "-n", CONTROL_NAMESPACE, f"--key={key}", f"--cert={cert}"),
        *("--dry-run=client", "-o", "yaml"),
    )
    path = directory / f"{name}-secret.yaml"
    path.write_text(manifest)
    return path


async def test_secure_gateway_serves_the_credential_secret_and_follows_its_replacement(
    kube_mesh: KubeMesh, docs_config: Callable[[str], Any], tmp_path: Path
) -> None:
    first_ca, second_ca = TestCA("example.com"), TestCA("example.org")
    first = _secret_tls(kube_mesh, tmp_path, first_ca, "example_certs1")
    kube_mesh.kubectl.run("apply", "-f", str(first))  # created, as `kubectl create secret tls` does
    before = gateway_pods(kube_mesh)
    await docs_config("secure-ingress")
    first_ca_pem = first_ca.pem.decode()
    _, body, served = await until(
        lambda: outside_request(kube_mesh, 443, "/status/418", ca=first_ca_pem),
        lambda r: r[0] == 418,
        "HTTPS with the credential's certificate",
    )
    assert '"service": "reviews"' in body, body
    # a client trusting only another CA refuses the certificate served
    refused = outside_request(kube_mesh, 443, "/status/418", ca=second_ca.pem.decode())
    assert refused[0] == 0 and "CERTIFICATE_VERIFY_FAILED" in refused[1], refused

    kube_mesh.kubectl.run("apply", "-f", str(_secret_tls(kube_mesh, tmp_path, second_ca, "example_certs2")))
    second_ca_pem = second_ca.pem.decode()
    _, _, rotated = await until(
        lambda: outside_request(kube_mesh, 443, "/status/418", ca=second_ca_pem),
        lambda r: r[0] == 418,
        "the replaced Secret's certificate served",
    )
    assert rotated != served
    assert outside_request(kube_mesh, 443, "/status/418", ca=first_ca_pem)[0] == 0  # the old one is gone
    assert gateway_pods(kube_mesh) == before  # same pod, no container restart
