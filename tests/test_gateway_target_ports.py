"""A gateway behind a Kubernetes Service (Istio's ``istio-ingressgateway``: 80 -> 8080, 443 -> 8443) listens on the
Service's targetPorts, as Istio's gateways (``pilot.model.gateway_target_ports``); Gateways, matches and virtual host
names keep the Service's port. Asserted on the generated listeners and route tables, validated by real Envoy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)

from pilot.config.parse import parse_config_text
from pilot.generate.registry import LISTENER_TYPE, ROUTE_TYPE
from pilot.kube import KINDS, KubernetesRegistry
from pilot.model import MeshSnapshot, Proxy, build_snapshot, parse_node_id, resolve_proxy
from pilot.model.gateway_target_ports import gateway_target_ports
from pilot.model.registry_service_entry import SERVICE_ENTRIES
from tests import kube_builders as kb
from tests.source_builders import by_name, generated_type, validate_generated

GATEWAY_POD = "istio-ingressgateway-5d8f9c6b5-abcde"
GATEWAY_IP = "10.244.0.80"
GATEWAY_LABELS = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
ROUTER = f"router~{GATEWAY_IP}~{GATEWAY_POD}.istio-system~istio-system.svc.cluster.local"
ISTIO_PORTS = [
    {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
    {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 8080},
    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
]
CONFIG = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: httpbin-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [httpbin.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.example.com]
  gateways: [httpbin-gateway]
  http:
  - match: [{uri: {prefix: /status}, port: 80}]
    route: [{destination: {port: {number: 8000}, host: httpbin}}]
"""


def ingress_service(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "namespace": "istio-system",
        "cluster_ip": "10.96.0.80",
        "ports": ISTIO_PORTS,
        "selector": GATEWAY_LABELS,
        "kind": "LoadBalancer",
    }
    return kb.service("istio-ingressgateway", **(arguments | overrides))


def snapshot_with(service: dict[str, Any]) -> MeshSnapshot:
    kube = KubernetesRegistry()
    objects = [
        service,
        kb.service("httpbin", namespace="default", ports=[{"name": "http", "port": 8000, "targetPort": 80}]),
        kb.pod(GATEWAY_POD, GATEWAY_IP, namespace="istio-system", labels=GATEWAY_LABELS, sidecar=False),
        kb.node(),
    ]
    for kind in KINDS:
        kube.replace(kind, [o for o in objects if o["kind"] == kind])
    parsed = parse_config_text(CONFIG, "gateway.yaml")
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    configs = {r.meta.key: r for r in parsed.resources}
    return build_snapshot(configs, 1, registries=(SERVICE_ENTRIES, kube))


def gateway_proxy(snapshot: MeshSnapshot) -> Proxy:
    return resolve_proxy(parse_node_id(ROUTER, "", {}, GATEWAY_LABELS), snapshot)


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        (ingress_service(), {80: 8080, 443: 8443}),
        (ingress_service(selector={"istio": "egressgateway"}), {}),
        (ingress_service(namespace="default"), {}),
        (ingress_service(ports=[{"name": "http2", "port": 80, "protocol": "TCP", "targetPort": "http"}]), {}),
        (ingress_service(selector={}), {}),
    ],
    ids=["selects-the-gateway", "selects-other-pods", "other-namespace", "named-target-port", "no-selector"],
)
def test_target_ports_of_the_services_fronting_the_gateway(service: dict[str, Any], expected: dict[int, int]) -> None:
    snapshot = snapshot_with(service)
    assert dict(gateway_target_ports(gateway_proxy(snapshot), snapshot)) == expected


def test_listener_binds_the_target_port_and_routes_keep_the_gateway_port(tmp_path: Path) -> None:
    snapshot = snapshot_with(ingress_service())
    proxy = gateway_proxy(snapshot)
    assert proxy.workload is None  # a gateway pod has no sidecar: not a mesh workload
    validate_generated(tmp_path, proxy, snapshot)
    [listener] = by_name(generated_type(LISTENER_TYPE, proxy, snapshot)).values()
    assert listener.name == "0.0.0.0_8080"
    assert (listener.address.socket_address.address, listener.address.socket_address.port_value) == ("0.0.0.0", 8080)
    hcm = HttpConnectionManager()
    assert listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)
    assert (hcm.rds.route_config_name, hcm.stat_prefix) == ("http.8080", "outbound_0.0.0.0_8080")
    table = by_name(generated_type(ROUTE_TYPE, proxy, snapshot))["http.8080"]
    [vhost] = table.virtual_hosts
    assert (vhost.name, list(vhost.domains)) == (
        "httpbin.example.com:80",
        ["httpbin.example.com", "httpbin.example.com:*"],
    )
    [route] = vhost.routes  # the match's port 80 is the Gateway's: it applies
    assert (route.match.prefix, route.route.cluster) == ("/status", "outbound|8000||httpbin.default.svc.cluster.local")
