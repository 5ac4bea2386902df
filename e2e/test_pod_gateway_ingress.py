"""Istio's ingress tasks through a real ingress gateway pod (``e2e.pod_gateway``: ``envoy-bootstrap run gateway``,
node type ``router``, labels ``istio=ingressgateway``) in the pod mesh, called by a client outside the mesh
(the ``stranger`` namespace) at the gateway's address, with the YAML of Istio's docs (``e2e/istio_docs``):

- "Ingress Gateways": ``httpbin.example.com`` on port 80, ``/status`` and ``/delay`` routed to the app; another
  path, or another Host, is 404 at the gateway;
- a Gateway whose server conflicts with one in force (a TCP server on the HTTP port 80) is rejected naming the
  other, and the gateway goes on routing HTTP as before;
- ``httpsRedirect``: the plaintext server answers 301 to ``https://``;
- "Securing Gateways with HTTPS" (file-mounted certificates): SIMPLE on 443 with the server certificate the test
  generates (the client verifies it for ``httpbin.example.com``), then MUTUAL: a client without a certificate is
  refused, one with a certificate of the CA gets through; with ``caCrl`` naming the CA's revocation list, a client
  whose certificate it lists is refused while another of the CA still gets through.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.l4_apps import make_certificates
from e2e.pod_gateway import docs_config, gateway_get, https_get, run_gateway, wait_for
from e2e.pod_mesh import PodMesh, pod_mesh
from e2e.pods import why_pods_cannot_run

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

HOST = "httpbin.example.com"
REVOKED = "revoked.example.com"  # a client whose certificate the CA's CRL lists

REDIRECT_GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: httpbin-redirect
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 8080
      name: http-redirect
      protocol: HTTP
    hosts:
    - "httpbin.example.com"
    tls:
      httpsRedirect: true # sends 301 redirect for http requests
"""


# earlier than httpbin-gateway by name: rejected because it is the change, and a TCP proxy to reviews if it were not
CONFLICTING_GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: a-tcp-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a-tcp}
spec:
  hosts: ["*"]
  gateways: [a-tcp-gateway]
  tcp:
  - route:
    - destination: {host: reviews, port: {number: 9080}}
"""


def _status(mesh: PodMesh, path: str, host: str = HOST) -> int:
    return gateway_get(mesh, f"http://{mesh.addresses['ingressgateway']}{path}", host)[0]


async def test_ingress_routes_outside_requests_by_host_and_path(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, docs_config("ingress-control")) as mesh, run_gateway(mesh):
        await wait_for(lambda: _status(mesh, "/status/200"), lambda s: s == 200, mesh, "gateway routes /status")

        status, body, _ = gateway_get(mesh, f"http://{mesh.addresses['ingressgateway']}/status/418", HOST)
        assert status == 418 and '"service": "reviews"' in body, (status, body)
        assert _status(mesh, "/delay/10") == 200
        assert _status(mesh, "/headers") == 404  # no route for the path on the gateway
        assert _status(mesh, "/status/200", host="other.example.com") == 404  # no virtual host for the Host


async def test_a_conflicting_gateway_is_rejected_and_the_one_in_force_keeps_routing(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, docs_config("ingress-control")) as mesh, run_gateway(mesh):
        await wait_for(lambda: _status(mesh, "/status/200"), lambda s: s == 200, mesh, "gateway routes /status")

        await mesh.config.apply("20-conflict", CONFLICTING_GATEWAY)
        configz = await mesh.config.wait_synced()
        [entry] = [r for r in configz["rejected"] if r["kind"] == "Gateway"]
        assert entry["name"] == "a-tcp-gateway" and entry["in_force"] is None, entry
        [error] = entry["errors"]
        assert "conflicts with Gateway default/httpbin-gateway (" in error, error
        assert "on port 80: a TCP server cannot share a port with an HTTP server" in error, error
        assert _status(mesh, "/status/418") == 418  # still HTTP routing by Host and path, not a TCP proxy
        assert _status(mesh, "/headers") == 404


async def test_https_redirect_answers_301_to_https(tmp_path: Path) -> None:
    config = docs_config("ingress-control") + "\n---\n" + REDIRECT_GATEWAY
    async with pod_mesh(tmp_path, config) as mesh, run_gateway(mesh):
        url = f"http://{mesh.addresses['ingressgateway']}:8080/status/200"
        _, _, headers = await wait_for(
            lambda: gateway_get(mesh, url, HOST, follow_redirects=False), lambda r: r[0] == 301, mesh, "redirect"
        )
        assert headers["location"] == f"https://{HOST}/status/200"


def _write_pki(directory: Path) -> tuple[dict[str, Path], str, tuple[str, str]]:
    """The server's files (as the docs' paths name them), the CA (PEM) and a client certificate and key; beside
    them ``revoked.crl``, the CA's revocation list naming the certificate of ``REVOKED`` (``revoked.pem`` and
    ``revoked.key``)."""
    certificates = make_certificates([HOST, "client.example.com", REVOKED])
    (directory / "revoked.crl").write_text(certificates.revocation_list(REVOKED))
    for name, text in zip(("revoked.pem", "revoked.key"), certificates.leaves[REVOKED], strict=True):
        (directory / name).write_text(text)
    server_cert, server_key = certificates.leaves[HOST]
    files = {
        "/etc/istio/ingressgateway-certs/tls.crt": directory / "tls.crt",
        "/etc/istio/ingressgateway-certs/tls.key": directory / "tls.key",
        "/etc/istio/ingressgateway-ca-certs/example.com.crt": directory / "example.com.crt",
    }
    contents = (server_cert, server_key, certificates.ca_pem)
    for path, text in zip(files.values(), contents, strict=True):
        path.write_text(text)
    return files, certificates.ca_pem, certificates.leaves["client.example.com"]


async def test_https_simple_then_mutual_tls_with_file_certificates(tmp_path: Path) -> None:
    files, ca_pem, client = _write_pki(tmp_path)
    replacements = (
        ("host: httpbin\n", "host: reviews\n"),
        ("number: 8000\n", "number: 9080\n"),
        *((docs_path, str(path)) for docs_path, path in files.items()),
    )
    simple = docs_config("ingress-secure-mount", replacements)
    async with pod_mesh(tmp_path / "mesh", simple) as mesh, run_gateway(mesh):
        gateway = mesh.addresses["ingressgateway"]
        stranger = mesh.pod("stranger")

        def call(identity: tuple[str, str] | None = None) -> tuple[int, str]:
            return https_get(stranger, gateway, 443, HOST, "/status/418", ca_pem, identity)

        _, body = await wait_for(call, lambda r: r[0] == 418, mesh, "HTTPS SIMPLE through the gateway")
        assert '"service": "reviews"' in body

        gateway_file = docs_config("ingress-mutual-mount", replacements)
        virtual_service = simple.split("\n---\n", 1)[1]
        await mesh.config.apply("10-rules", gateway_file + "\n---\n" + virtual_service)
        await wait_for(call, lambda r: r[0] == 0, mesh, "MUTUAL refuses a client without a certificate")
        assert call(client)[0] == 418

        crl = str(tmp_path / "revoked.crl")
        revoked = ((tmp_path / "revoked.pem").read_text(), (tmp_path / "revoked.key").read_text())
        assert call(revoked)[0] == 418  # a certificate of the CA: in, until the CRL lists it
        with_crl = gateway_file.replace("caCertificates: ", f"caCrl: {crl}\n      caCertificates: ")
        await mesh.config.apply("10-rules", with_crl + "\n---\n" + virtual_service)
        await wait_for(lambda: call(revoked), lambda r: r[0] == 0, mesh, "caCrl refuses the revoked client")
        assert call(client)[0] == 418  # not revoked: still in
