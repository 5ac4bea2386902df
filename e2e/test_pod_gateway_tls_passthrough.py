"""TLS and TCP servers on a real ingress gateway pod (``e2e.pod_gateway``), called from outside the mesh (the
``stranger`` namespace) at the gateway's address, with the YAML of Istio's docs (``e2e/istio_docs``):

- "Ingress Gateway without TLS Termination": Gateway ``mygateway`` (HTTPS 443, ``tls.mode: PASSTHROUGH``, host
  ``nginx.example.com``) and a VirtualService ``tls`` route by ``sniHosts`` to ``my-nginx:443``, a pod whose app is
  a Python TLS server with the ``nginx.example.com`` certificate the test generates (the docs' NGINX). The gateway
  has no certificate at all: the client verifies the app's certificate and reads the app's own line, so the TLS
  session is end to end; an SNI the Gateway does not name is closed at the gateway.
- "TCP Traffic Shifting" through the ingress gateway: Gateway ``tcp-echo-gateway`` (TCP 31400, hosts ``*``), all
  connections to tcp-echo v1, then the docs' 80/20 split, counted over fresh connections to the gateway's 31400.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from e2e.l4_apps import make_certificates, tcp_echo_counts, tcp_echo_replies, tls_hellos, tls_server_command
from e2e.l4_mesh import TLS_APP_PORT, start_pods, start_tcp_echo
from e2e.mesh_config import DEMO_TCP_SERVICES_FILE, render_pod_demo
from e2e.pod_gateway import DOCS_DIR, run_gateway, wait_for
from e2e.pod_mesh import NAMESPACE, PodMesh, pod_mesh
from e2e.pods import why_pods_cannot_run
from e2e.traffic import binomial_bounds

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

NGINX = "nginx.example.com"
TCP_GATEWAY_PORT = 31400
CONNECTIONS = 200

# The docs' my-nginx Service (port 443, selector run=my-nginx) and Deployment, as the pod registry writes them; the
# app's uid cannot bind 443, so the ServiceEntry's targetPort maps it, as a Service's targetPort would.
MY_NGINX_SERVICE = f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: my-nginx
  namespace: {NAMESPACE}
spec:
  hosts:
  - my-nginx.{NAMESPACE}.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 443
    name: tcp
    protocol: TCP
    targetPort: {TLS_APP_PORT}
  resolution: STATIC
  workloadSelector:
    labels:
      run: my-nginx
"""


def _docs(task: str) -> str:
    return "\n---\n".join(path.read_text() for path in sorted((DOCS_DIR / task).glob("*.yaml")))


async def test_tls_passthrough_carries_the_apps_own_tls_session_chosen_by_sni(tmp_path: Path) -> None:
    certificates = make_certificates([NGINX])
    async with pod_mesh(tmp_path) as mesh, run_gateway(mesh):
        app = tls_server_command("my-nginx", TLS_APP_PORT, *certificates.leaves[NGINX])
        entries = await start_pods(mesh, {"my-nginx": (app, "run=my-nginx", "default")})
        config = "---\n".join([MY_NGINX_SERVICE, entries, _docs("ingress-sni-passthrough")])
        await mesh.config.apply("20-nginx", config)
        gateway, stranger = mesh.addresses["ingressgateway"], mesh.pod("stranger")

        def hello(sni: str, count: int = 3) -> list[tuple[str, str]]:
            return tls_hellos(stranger, gateway, 443, sni, certificates.ca_pem, count)

        hellos = await wait_for(lambda: hello(NGINX), lambda r: r == [(NGINX, "my-nginx")] * 3, mesh, "passthrough")
        assert hellos == [(NGINX, "my-nginx")] * 3  # the app's certificate and its line: not terminated
        unknown = hello("other.example.com", 2)
        assert [cn for cn, _ in unknown] == ["error", "error"], unknown  # no server for that SNI: closed


def _without_kind(text: str, kind: str) -> str:
    documents = yaml.safe_load_all(text)
    return yaml.safe_dump_all([d for d in documents if d is not None and d["kind"] != kind], sort_keys=False)


def _tcp_echo_registry(mesh: PodMesh) -> str:
    """The demo's tcp-echo ServiceEntry and WorkloadEntries (without its DestinationRule: the docs' file has it)."""
    return _without_kind(render_pod_demo(DEMO_TCP_SERVICES_FILE, mesh.network), "DestinationRule")


async def test_tcp_traffic_shifting_through_the_ingress_gateway(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path) as mesh, run_gateway(mesh):
        await start_tcp_echo(mesh)
        registry = _tcp_echo_registry(mesh)
        await mesh.config.apply("20-tcp-echo", registry + "---\n" + _docs("tcp-traffic-shifting"))
        gateway, stranger = mesh.addresses["ingressgateway"], mesh.pod("stranger")

        def replies(count: int) -> list[str]:
            return tcp_echo_replies(stranger, gateway, TCP_GATEWAY_PORT, count)

        all_v1 = await wait_for(lambda: replies(10), lambda r: tcp_echo_counts(r) == {"v1": 10}, mesh, "all to v1")
        assert all(reply.startswith("one ") for reply in all_v1), all_v1

        # kubectl apply of tcp-echo-20-v2.yaml: its VirtualService replaces the one of the same name, the Gateway
        # and DestinationRule stay
        kept = _without_kind(_docs("tcp-traffic-shifting"), "VirtualService")
        await mesh.config.apply("20-tcp-echo", f"{registry}---\n{kept}---\n{_docs('tcp-traffic-shifting-20-v2')}")
        await wait_for(lambda: replies(20), lambda r: "v2" in tcp_echo_counts(r), mesh, "20% to v2")
        counts = tcp_echo_counts(replies(CONNECTIONS))
    low, high = binomial_bounds(CONNECTIONS, 0.20)
    assert set(counts) == {"v1", "v2"}, counts
    assert low <= counts["v2"] <= high, counts
