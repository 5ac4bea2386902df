"""The mesh model: node ids, host resolution, service endpoints and instances, proxies, change detection."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pilot.config.parse import parse_config_text
from pilot.config.types import ConfigKey, Resource
from pilot.model import (
    NodeIdError,
    build_snapshot,
    destination_rule_for,
    host_matches,
    parse_node_id,
    resolve_host,
    resolve_proxy,
    virtual_services_for,
)
from pilot.model.types import MeshSnapshot

MESH = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  - {number: 9443, name: grpc, protocol: GRPC, targetPort: 19443}
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.7, ports: {https: 8443}, labels: {zone: a}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 127.0.0.21, labels: {app: reviews, version: v1}, ports: {http: 19080}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: other}
spec: {address: 127.0.0.22, labels: {app: reviews, version: v2}, ports: {http: 19080}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: wildcard, namespace: default}
spec: {host: "*.example.com"}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
"""


def configs(text: str = MESH) -> dict[ConfigKey, Resource]:
    parsed = parse_config_text(text, "mesh.yaml")
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    return {r.meta.key: r for r in parsed.resources}


@pytest.fixture
def snapshot() -> MeshSnapshot:
    return build_snapshot(configs(), version=1)


@pytest.mark.parametrize(
    ("host", "namespace", "expected"),
    [
        ("reviews", "default", "reviews.default.svc.cluster.local"),
        ("reviews", "prod", "reviews.prod.svc.cluster.local"),
        ("reviews.default", "prod", "reviews.default"),
        ("api.example.com", "prod", "api.example.com"),
        ("*.example.com", "prod", "*.example.com"),
        ("*", "prod", "*"),
    ],
    ids=["short", "short-other-ns", "dotted-kept", "fqdn", "wildcard", "star"],
)
def test_resolve_host_expands_only_short_names(host: str, namespace: str, expected: str) -> None:
    assert resolve_host(host, namespace) == expected


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("a.example.com", "a.example.com", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "example.com", False),
        ("*", "anything.local", True),
        ("a.example.com", "b.example.com", False),
    ],
    ids=["exact", "wildcard", "wildcard-needs-label", "star", "different"],
)
def test_host_matches(pattern: str, host: str, matches: bool) -> None:
    assert host_matches(pattern, host) is matches


def test_parse_node_id_reads_istio_form() -> None:
    node = parse_node_id("sidecar~127.0.0.21~reviews-v1.default~default.svc.cluster.local", cluster="reviews")

    assert (node.type, node.ip, node.workload_name, node.namespace) == (
        "sidecar",
        "127.0.0.21",
        "reviews-v1",
        "default",
    )
    assert node.dns_domain == "default.svc.cluster.local"
    assert node.cluster == "reviews"


@pytest.mark.parametrize(
    "node_id",
    [
        "reviews-v1",
        "sidecar~127.0.0.21~reviews-v1~default.svc.cluster.local",
        "gateway~127.0.0.21~reviews-v1.default~default.svc.cluster.local",
        "sidecar~~reviews-v1.default~default.svc.cluster.local",
    ],
    ids=["plain-name", "no-namespace", "unknown-type", "empty-ip"],
)
def test_parse_node_id_rejects_other_forms_with_the_expected_form(node_id: str) -> None:
    with pytest.raises(NodeIdError, match=r"sidecar|workload|proxy type"):
        parse_node_id(node_id)


def test_selected_workloads_are_endpoints_at_their_sidecar_on_the_service_port(snapshot: MeshSnapshot) -> None:
    service = snapshot.services["reviews.default.svc.cluster.local"]

    [endpoint] = service.endpoints[9080]  # reviews-v2 is in another namespace: not selected
    assert (endpoint.address, endpoint.port) == ("127.0.0.21", 9080)
    assert endpoint.workload == ConfigKey(kind="WorkloadEntry", namespace="default", name="reviews-v1")
    assert endpoint.service_account == "reviews"
    assert [(e.address, e.port) for e in service.endpoints[9443]] == [("127.0.0.21", 9443)]


def test_inline_endpoints_use_their_own_port(snapshot: MeshSnapshot) -> None:
    [endpoint] = snapshot.services["api.example.com"].endpoints[443]

    assert (endpoint.address, endpoint.port, endpoint.workload) == ("192.0.2.7", 8443, None)
    assert dict(endpoint.labels) == {"zone": "a"}


def test_instances_carry_the_app_port_and_the_full_service(snapshot: MeshSnapshot) -> None:
    key = ConfigKey(kind="WorkloadEntry", namespace="default", name="reviews-v1")

    instances = {i.port.number: i for i in snapshot.instances[key]}

    assert instances[9080].target_port == 19080  # from the WorkloadEntry's ports map
    assert instances[9443].target_port == 19443  # from the ServicePort's targetPort
    assert instances[9080].service is snapshot.services["reviews.default.svc.cluster.local"]


def test_resolve_proxy_finds_its_workload_by_name_then_by_address(snapshot: MeshSnapshot) -> None:
    by_name = resolve_proxy(parse_node_id("sidecar~10.0.0.1~reviews-v1.default~default.svc.cluster.local"), snapshot)
    by_address = resolve_proxy(parse_node_id("sidecar~127.0.0.21~pod-xyz.default~default.svc.cluster.local"), snapshot)
    unknown = resolve_proxy(parse_node_id("sidecar~127.0.0.99~client.default~default.svc.cluster.local"), snapshot)

    assert by_name.workload is not None and by_name.address == "127.0.0.21"
    assert by_address.workload is by_name.workload
    assert len(by_name.instances) == 2
    assert (unknown.workload, unknown.instances, unknown.address) == (None, (), "127.0.0.99")


def test_rules_are_indexed_by_resolved_host(snapshot: MeshSnapshot) -> None:
    rule = destination_rule_for(snapshot, "reviews.default.svc.cluster.local")
    wildcard = destination_rule_for(snapshot, "api.example.com")

    assert rule is not None and rule.meta.key.name == "reviews"
    assert wildcard is not None and wildcard.meta.key.name == "wildcard"
    assert [vs.meta.key.name for vs in virtual_services_for(snapshot, "reviews.default.svc.cluster.local")] == [
        "reviews"
    ]
    assert virtual_services_for(snapshot, "api.example.com") == (), "rules bound only to a gateway skip sidecars"


def test_changed_kinds_name_only_what_differs(snapshot: MeshSnapshot) -> None:
    current = dict(snapshot.configs)
    key = ConfigKey(kind="VirtualService", namespace="default", name="reviews")
    current[key] = replace(current[key], meta=replace(current[key].meta, content_hash="edited"))

    unchanged = build_snapshot(snapshot.configs, version=2, previous=snapshot)
    edited = build_snapshot(current, version=3, previous=snapshot)
    removed = build_snapshot({k: v for k, v in snapshot.configs.items() if k.kind != "DestinationRule"}, 4, snapshot)

    assert unchanged.changed_kinds == frozenset()
    assert edited.changed_kinds == {"VirtualService"}
    assert removed.changed_kinds == {"DestinationRule"}


def test_a_selector_needs_every_label_to_match() -> None:
    text = MESH.replace(
        "workloadSelector: {labels: {app: reviews}}", "workloadSelector: {labels: {app: reviews, version: v1}}"
    )
    text += """
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1, namespace: default}
spec: {address: 127.0.0.31, labels: {app: ratings, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2b, namespace: default}
spec: {address: 127.0.0.24, labels: {app: reviews, version: v2}}
"""
    snapshot = build_snapshot(configs(text), version=1)

    selected = [
        e.workload.name for e in snapshot.services["reviews.default.svc.cluster.local"].endpoints[9080] if e.workload
    ]
    assert selected == ["reviews-v1"]
