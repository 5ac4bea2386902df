"""Gateways in the pod mesh (``e2e.pod_mesh``): a gateway is a network namespace on the pod network without
capture, running ``envoy-bootstrap run gateway`` (node type ``router``) as root, so that Envoy binds the Gateways'
ports (80, 443) on the namespace's address; clients outside the mesh (the ``stranger`` namespace) reach it there.

The Istio docs' YAML of each task is read from ``e2e/istio_docs/<task>/`` (``docs_config``) with the docs' app
names replaced by the pod mesh's (``httpbin`` port 8000 -> ``reviews`` port 9080: the reviews app answers
``/status/<code>`` and ``/delay/<ms>`` as httpbin does)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TypeVar

from agent.netns import in_netns_command
from agent.pod_dns import resolv_conf, write_pod_resolv_conf
from agent.pod_network import PodAddress
from agent.relay import Relay
from e2e.pod_mesh import PodMesh
from e2e.pods import envoy_stat, pod_python, pod_requests
from envoy_bootstrap.processes import start_logged_process, stop_process

__all__ = [
    "DOCS_DIR",
    "EGRESS_LABELS",
    "INGRESS_LABELS",
    "docs_config",
    "gateway_get",
    "gateway_service_yaml",
    "gateway_stat",
    "https_get",
    "run_gateway",
    "wait_for",
]

T = TypeVar("T")
DOCS_DIR = Path(__file__).with_name("istio_docs")
INGRESS_LABELS = {"istio": "ingressgateway"}
EGRESS_LABELS = {"istio": "egressgateway"}
GATEWAY_NAMESPACE = "istio-system"
DOMAIN_SUFFIX = "cluster.local"
_SETTLE_SECONDS = 30.0
_APP_REPLACEMENTS = (("host: httpbin\n", "host: reviews\n"), ("number: 8000\n", "number: 9080\n"))


def docs_config(task: str, replacements: tuple[tuple[str, str], ...] = _APP_REPLACEMENTS) -> str:
    """The YAML files of an Istio docs task, joined, with the docs' app replaced by ours."""
    text = "\n---\n".join(path.read_text() for path in sorted((DOCS_DIR / task).glob("*.yaml")))
    for old, new in replacements:
        text = text.replace(old, new)
    return text


@contextlib.asynccontextmanager
async def run_gateway(
    mesh: PodMesh,
    name: str = "ingressgateway",
    labels: Mapping[str, str] = INGRESS_LABELS,
    *,
    workload: str = "istio-ingressgateway",
) -> AsyncIterator[PodAddress]:
    """A gateway namespace (address ``mesh.addresses[name]``) running ``envoy-bootstrap run gateway`` for workload
    ``workload`` in ``istio-system``, with ``labels`` (its node metadata ``LABELS``; a WorkloadEntry only when the
    gateway is also a service's workload, ``gateway_service_yaml``), fed by the mesh's Pilot (and Mixer, when the mesh
    has one) through a relay on the namespace's 127.0.0.1, as a pod's sidecar reaches the control plane
    (``agent.relay``); Mixer directly at its address on the pod network's gateway when the mesh's pods do
    (``mesh.mixer_direct``, ``pod run --mixer-direct``). Its resolv.conf names the mesh's upstream DNS, as a gateway pod
    has the cluster DNS."""
    address = await mesh.run_plain(name)
    if "dns" in mesh.addresses:  # the cluster DNS a gateway pod has: names outside the mesh for DNS clusters
        dns = resolv_conf(GATEWAY_NAMESPACE, DOMAIN_SUFFIX, [mesh.addresses["dns"]], loopback_fallback=False)
        write_pod_resolv_conf(address.netns, dns)
    upstreams = [mesh.pilot.xds_address]
    mixer: tuple[str, ...] = ()
    if mesh.mixer is not None and mesh.mixer_direct:
        mixer = ("--mixer", mesh.mixer.grpc_address)
    elif mesh.mixer is not None:
        upstreams.append(mesh.mixer.grpc_address)
        mixer = ("--mixer", f"127.0.0.1:{_relayed(mesh.mixer.grpc_address)[0][1]}")
    relay = Relay(address.netns, [_relayed(upstream) for upstream in upstreams])
    await relay.start()
    pilot = f"127.0.0.1:{_relayed(mesh.pilot.xds_address)[0][1]}"
    argv = [
        *(sys.executable, "-m", "envoy_bootstrap.cli", "run", "gateway", "--workload", workload),
        *("--namespace", GATEWAY_NAMESPACE, "--address", mesh.addresses[name], "--pilot", pilot, *mixer),
        *(arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")),
        *("--bootstrap-file", str(mesh.workdir / f"gateway-{name}.json")),
    ]
    command = in_netns_command(address.netns, argv)
    process = await start_logged_process(command, mesh.workdir / f"plain-{name}.log")
    try:
        yield address
    finally:
        await stop_process(process, name=name, timeout=5)
        await relay.close()


def gateway_service_yaml(
    mesh: PodMesh,
    name: str = "egressgateway",
    labels: Mapping[str, str] = EGRESS_LABELS,
    *,
    workload: str = "istio-egressgateway",
    ports: Mapping[str, int] | None = None,
) -> str:
    """The gateway ``name`` as the workload of a service in the registry, as Istio's ``istio-egressgateway``
    Service and its pods: ServiceEntry ``<workload>.istio-system.svc.cluster.local`` (MESH_INTERNAL, STATIC,
    ``workloadSelector`` ``labels``) with ``ports`` (name -> number, HTTP ``http`` 80 and HTTPS ``https`` 443 by
    default, the ports of the Service) and a WorkloadEntry at the gateway's address with ``labels``."""
    ports = ports if ports is not None else {"http": 80, "https": 443}
    protocols = {"http": "HTTP", "https": "HTTPS", "tls": "TLS", "tcp": "TCP"}
    port_lines = "".join(
        f"  - {{number: {number}, name: {port}, protocol: {protocols.get(port.split('-')[0], 'TCP')}}}\n"
        for port, number in ports.items()
    )
    selector = ", ".join(f"{key}: {value}" for key, value in labels.items())
    label_lines = "".join(f"    {key}: {value}\n" for key, value in labels.items())
    return (
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
        f"metadata:\n  name: {workload}\n  namespace: {GATEWAY_NAMESPACE}\n"
        f"spec:\n  hosts: [{workload}.{GATEWAY_NAMESPACE}.svc.{DOMAIN_SUFFIX}]\n  location: MESH_INTERNAL\n"
        f"  ports:\n{port_lines}  resolution: STATIC\n  workloadSelector:\n    labels: {{{selector}}}\n"
        "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
        f"metadata:\n  name: {workload}\n  namespace: {GATEWAY_NAMESPACE}\n"
        f"spec:\n  serviceAccount: {workload}-service-account\n  address: {mesh.addresses[name]}\n"
        f"  labels:\n{label_lines}"
    )


def gateway_stat(mesh: PodMesh, name: str, stat: str) -> int:
    """A counter of the gateway ``name``'s Envoy (its admin on the namespace's 127.0.0.1), 0 when absent."""
    return envoy_stat(mesh.pod(name), stat)


def _relayed(address: str) -> tuple[tuple[str, int], tuple[str, int]]:
    host, _, port = address.rpartition(":")
    return ("127.0.0.1", int(port)), (host, int(port))


def gateway_get(
    mesh: PodMesh, url: str, host: str, *, client: str = "stranger", follow_redirects: bool = True
) -> tuple[int, str, dict[str, str]]:
    """One GET of ``url`` (at the gateway's address) with ``Host: host`` by a plain client outside the mesh."""
    [response] = pod_requests(mesh.pod(client), url, headers={"Host": host}, follow_redirects=follow_redirects)
    return response


_HTTPS_CLIENT = """
import json, os, socket, ssl, sys, tempfile
host, port, sni, ca, path, cert, key = sys.argv[1:8]
context = ssl.create_default_context(cadata=ca)
if cert:
    directory = tempfile.mkdtemp()
    chain = os.path.join(directory, "client.pem")
    with open(chain, "w") as file:
        file.write(cert + key)
    context.load_cert_chain(chain)
try:
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=sni) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\\r\\nHost: {sni}\\r\\nConnection: close\\r\\n\\r\\n".encode())
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\\r\\n\\r\\n")
    print(json.dumps([int(head.split(b" ", 2)[1]), body.decode(errors="replace")]))
except (OSError, ssl.SSLError, ValueError, IndexError) as error:
    print(json.dumps([0, repr(error)]))
"""


def https_get(
    pod: PodAddress, address: str, port: int, sni: str, path: str, ca_pem: str, client: tuple[str, str] | None = None
) -> tuple[int, str]:
    """One HTTPS GET from an app in ``pod`` to ``address:port`` with SNI and Host ``sni``, verifying the server
    against ``ca_pem``; ``client``: (certificate PEM, key PEM) to present. (status, body), or (0, the error)."""
    cert, key = client if client is not None else ("", "")
    out = pod_python(pod, _HTTPS_CLIENT, args=[address, str(port), sni, ca_pem, path, cert, key], timeout=30)
    status, body = json.loads(out)
    return int(status), str(body)


async def wait_for(probe: Callable[[], T], done: Callable[[T], bool], mesh: PodMesh, what: str) -> T:
    """Probe (in a thread) until ``done`` holds for its result (config reached the gateway), else fail with the
    last result and the logs."""
    deadline = asyncio.get_running_loop().time() + _SETTLE_SECONDS
    last = await asyncio.to_thread(probe)
    while not done(last):
        if asyncio.get_running_loop().time() > deadline:
            logs = [mesh.log_tails()]
            for log in sorted(mesh.workdir.glob("plain-*gateway*.log")):
                logs.append(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
            raise AssertionError(f"{what}: {last}\n" + "\n".join(logs))
        await asyncio.sleep(0.5)
        last = await asyncio.to_thread(probe)
    return last
