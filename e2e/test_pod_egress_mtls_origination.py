"""Istio's "Mutual TLS origination for egress traffic" at the sidecar, in pods: the ``productpage`` pod's app sends
plain HTTP to ``my-nginx.mesh-external.svc.cluster.local:31443``, an HTTPS server outside the mesh (a network
namespace on the pod network, no sidecar, known to the upstream DNS) that requires a client certificate signed by
the operator's CA. The ServiceEntry and DestinationRule are Istio's docs' (``e2e/istio_docs/egress-tls-origination``):
``tls.mode: MUTUAL`` with ``credentialName: client-credential``, the Secret given to Citadel as
``--credentials-dir DIR/default/client-credential/{tls.crt,tls.key,ca.crt}`` and served to the sidecar over SDS.

The rule's ``workloadSelector`` selects the client pod: the ``ratings`` client, not selected, gets no TLS
origination for that host (plain HTTP, refused by the server), as in Istio.

Proven: the mesh starts while the Secret does not exist yet (the sidecars do not wait for it) and the requests
fail until it is written; then the server sees the client certificate's CN (so the sidecar originated mutual TLS
with the credential); once the credential is replaced by a certificate of another CA, the server refuses the
handshake and the app gets 503; a client with no certificate at all (the plain ``stranger`` namespace) is refused
by the server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import mtls_https_server
from e2e.pod_mesh import PodMesh, pod_mesh
from e2e.pods import PYTHON, pod_python, why_pods_cannot_run
from tests.credential_builders import TestCA, write_credential

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

DOCS = Path(__file__).parent / "istio_docs" / "egress-tls-origination" / "mutual-tls-origination.yaml"
NGINX = "my-nginx.mesh-external.svc.cluster.local"
PORT = 31443
URL = f"http://{NGINX}:{PORT}/"
_READY_SECONDS = 40.0

_HANDSHAKE = """
import socket, ssl, sys
context = ssl.create_default_context(cafile=sys.argv[3])
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=sys.argv[4]) as tls:
            tls.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
            print("answered" if tls.recv(100) else "closed")
except (OSError, ssl.SSLError) as error:
    print(f"refused: {error!r}")
"""


def docs_config() -> str:
    """The docs' documents, the DestinationRule's ``workloadSelector`` selecting the e2e client (``app:
    productpage``) where the docs' selects their ``sleep`` client."""
    documents: list[dict[str, Any]] = list(yaml.safe_load_all(DOCS.read_text()))
    for document in documents:
        if "workloadSelector" in document["spec"]:
            assert document["spec"]["workloadSelector"] == {"matchLabels": {"app": "sleep"}}
            document["spec"]["workloadSelector"] = {"matchLabels": {"app": "productpage"}}
    return yaml.safe_dump_all(documents, sort_keys=False)


async def until_status(mesh: PodMesh, status: int) -> list[tuple[int, str]]:
    deadline = asyncio.get_running_loop().time() + _READY_SECONDS
    last: list[tuple[int, str]] = []
    while asyncio.get_running_loop().time() < deadline:
        last = await asyncio.to_thread(mesh.get, URL, 3)
        if all(code == status for code, _ in last):
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"{URL} did not answer {status}: {last}\n{mesh.log_tails()}")


async def test_a_sidecar_originates_mutual_tls_with_the_credential_citadel_serves(tmp_path: Path) -> None:
    ca = TestCA()
    server = ca.issue([NGINX])
    server_dir = tmp_path / "nginx"
    server_dir.mkdir()
    for name, data in {"cert.pem": server.chain_pem, "key.pem": server.key_pem, "ca.pem": ca.pem}.items():
        (server_dir / name).write_bytes(data)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    client = ca.issue(["client.example.com"], client=True)
    server_argv = [
        *(PYTHON, "-c", Path(mtls_https_server.__file__).read_text(), str(PORT)),
        *(str(server_dir / "cert.pem"), str(server_dir / "key.pem"), str(server_dir / "ca.pem")),
    ]
    async with pod_mesh(
        tmp_path,
        docs_config(),
        citadel=True,
        citadel_arguments=("--credentials-dir", str(credentials)),
        dns_names={NGINX: "external"},
        clients=("productpage", "ratings"),
    ) as mesh:
        # the mesh got ready with no Secret yet: the sidecars started; the requests fail, never in plaintext
        await mesh.run_plain("external", server_argv, uid=None)
        await until_status(mesh, 503)
        write_credential(credentials, "default", "client-credential", client.files())
        answered = await until_status(mesh, 200)
        assert [json.loads(body) for _, body in answered] == [{"client": "client.example.com", "path": "/"}] * 3
        # ratings is not selected by the rule: its sidecar sends plain HTTP, which the TLS server refuses
        unselected = await mesh.responses(URL, 3, client="ratings")
        assert all(response.status != 200 for response in unselected), unselected

        no_certificate = await asyncio.to_thread(
            pod_python,
            mesh.pod("stranger"),
            _HANDSHAKE,
            args=[mesh.addresses["external"], str(PORT), str(server_dir / "ca.pem"), NGINX],
            uid=0,
        )
        assert no_certificate.startswith("refused"), no_certificate

        stranger = TestCA("stranger.example.com").issue(["client.example.com"], client=True)
        write_credential(credentials, "default", "client-credential", {**stranger.files(), "ca.crt": ca.pem})
        refused = await until_status(mesh, 503)  # Citadel pushed the new certificate; the server refuses it
        assert all("upstream connect error" in body or "reset" in body for _, body in refused), refused
