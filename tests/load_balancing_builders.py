"""A small mesh for locality and consistent-hash tests: reviews endpoints in three localities, a productpage client in
us-west/zone1, and whatever DestinationRule / VirtualService a test adds; resources generated for one proxy."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.route.v3.route_components_pb2 import VirtualHost
from google.protobuf.message import Message

from pilot.config.parse import API_VERSIONS, parse_config_text
from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, GENERATORS, ROUTE_TYPE
from pilot.model import MeshSnapshot, Proxy, build_snapshot, parse_node_id, resolve_proxy

__all__ = ["GATEWAY", "REVIEWS", "LbMesh", "lb_mesh"]

REVIEWS = "reviews.default.svc.cluster.local"
GATEWAY = "gateway@"  # LbMesh.proxy("gateway@us-east/zone1"): the ingress gateway, in that locality
_WORKLOADS = {  # name -> (address, locality, version)
    "reviews-1": ("127.0.0.21", "us-west/zone1", "v1"),
    "reviews-2": ("127.0.0.22", "us-west/zone2", "v1"),
    "reviews-3": ("127.0.0.23", "us-east/zone1", "v2"),
    "reviews-4": ("127.0.0.24", "eu-central/zone1", "v2"),
    "productpage": ("127.0.0.10", "us-west/zone1", ""),
    "ratings": ("127.0.0.30", "us-east/zone1", ""),
}
_BASE: dict[tuple[str, str], Mapping[str, Any]] = {
    ("ServiceEntry", "reviews"): {
        "hosts": [REVIEWS],
        "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
        "location": "MESH_INTERNAL",
        "resolution": "STATIC",
        "workloadSelector": {"labels": {"app": "reviews"}},
    },
    **{
        ("WorkloadEntry", name): {
            "address": address,
            "locality": locality,
            "labels": {"app": name.split("-")[0], **({"version": version} if version else {})},
        }
        for name, (address, locality, version) in _WORKLOADS.items()
    },
}


class LbMesh:
    def __init__(self, snapshot: MeshSnapshot) -> None:
        self.snapshot = snapshot

    def proxy(self, workload: str = "productpage") -> Proxy:
        """A sidecar of ``workload``, or with ``gateway@<region/zone>`` an ingress gateway (a router of namespace
        default with no WorkloadEntry: its node's ``LABELS`` and locality)."""
        if workload.startswith(GATEWAY):
            node = parse_node_id(
                "router~127.0.0.40~ingressgateway.default~default.svc.cluster.local",
                "",
                {},
                {"istio": "ingressgateway"},
                workload.removeprefix(GATEWAY),
            )
        else:
            address = _WORKLOADS[workload][0]
            node = parse_node_id(f"sidecar~{address}~{workload}.default~default.svc.cluster.local", "", {})
        return resolve_proxy(node, self.snapshot)

    def resources(self, type_url: str, workload: str = "productpage") -> list[Message]:
        """The proxy's shared (scope) resources of the type, then its own."""
        generator = GENERATORS[type_url]
        proxy = self.proxy(workload)
        shared = [m for scope in generator.scopes(proxy) for m in generator.build_scope(scope, self.snapshot)]
        return [*shared, *generator.build_proxy(proxy, self.snapshot)]

    def cluster(self, name: str, workload: str = "productpage") -> Cluster:
        found = [c for c in self.resources(CLUSTER_TYPE, workload) if isinstance(c, Cluster) and c.name == name]
        assert len(found) == 1, name
        return found[0]

    def assignment(self, name: str, workload: str = "productpage") -> ClusterLoadAssignment:
        found = [
            a
            for a in self.resources(ENDPOINT_TYPE, workload)
            if isinstance(a, ClusterLoadAssignment) and a.cluster_name == name
        ]
        assert len(found) == 1, name
        return found[0]

    def virtual_host(self, name: str, workload: str = "productpage") -> VirtualHost:
        for table in self.resources(ROUTE_TYPE, workload):
            for vhost in getattr(table, "virtual_hosts", ()):
                if vhost.name == name:
                    return vhost
        raise AssertionError(f"no virtual host {name}")

    def priorities(self, name: str, workload: str = "productpage") -> list[tuple[str, int, int, int]]:
        """(region/zone, priority, group weight, endpoints) of each group of the assignment, sorted."""
        return sorted(
            (f"{g.locality.region}/{g.locality.zone}", g.priority, g.load_balancing_weight.value, len(g.lb_endpoints))
            for g in self.assignment(name, workload).endpoints
        )


def lb_mesh(*extra: tuple[str, str, Mapping[str, Any]]) -> LbMesh:
    """The mesh plus ``extra`` (kind, name, spec) resources, all in namespace default."""
    resources = {**_BASE, **{(kind, name): spec for kind, name, spec in extra}}
    text = "\n---\n".join(
        json.dumps(
            {
                "apiVersion": API_VERSIONS[0],
                "kind": kind,
                "metadata": {"name": name, "namespace": "default"},
                "spec": spec,
            }
        )
        for (kind, name), spec in resources.items()
    )
    parsed = parse_config_text(text, "mesh.yaml")
    errors = [str(e) for r in parsed.rejected for e in r.errors]
    assert not errors, errors
    return LbMesh(build_snapshot({r.meta.key: r for r in parsed.resources}, version=1))
