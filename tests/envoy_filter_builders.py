"""Builders for the EnvoyFilter tests: an EnvoyFilter from its spec (validated as a file's would be), a small mesh
with one captured sidecar (reviews-v1, serving reviews 9080 -> 8080; ratings 9080 and db 5432 outbound), and what
the registry serves it, by type and name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.message import Message

from meshplane import names
from meshplane.identity import SDS_NODE_METADATA
from pilot.config.origin import Origin
from pilot.config.parse import Rejected, parse_object
from pilot.config.types import EnvoyFilter, Protocol, Resolution, Resource, ServiceEntry, ServicePort
from pilot.model import MeshSnapshot, Proxy, parse_node_id, resolve_proxy
from tests.route_builders import REVIEWS, meta, port, service_entry, snapshot, workload
from tests.source_builders import generated_type

__all__ = ["POD_IP", "RATINGS", "envoy_filter", "mesh", "reviews_sidecar", "served"]

POD_IP = "10.89.0.21"
RATINGS = "ratings.default.svc.cluster.local"
CAPTURED = {names.INTERCEPTION_MODE_METADATA: "REDIRECT", SDS_NODE_METADATA: "true", "ISTIO_VERSION": "1.24.2"}


def envoy_filter(spec: Mapping[str, Any], name: str = "ef", namespace: str = "default") -> EnvoyFilter:
    """The EnvoyFilter ``namespace/name`` with ``spec``, validated (it must be accepted)."""
    document = {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    outcome = parse_object(document, Origin(file=f"{name}.yaml", line=1))
    assert not isinstance(outcome, Rejected), [str(e) for e in outcome.errors]
    assert isinstance(outcome, EnvoyFilter), outcome
    return outcome


def mesh(*extra: Resource) -> MeshSnapshot:
    reviews = service_entry(
        "reviews",
        REVIEWS,
        (ServicePort(number=9080, name="http", protocol=Protocol.HTTP, target_port=8080),),
        selector={"app": "reviews"},
    )
    ratings = service_entry("ratings", RATINGS, (port(9080),))
    db = ServiceEntry(
        meta=meta("ServiceEntry", "db"),
        hosts=("db.example.com",),
        ports=(ServicePort(number=5432, name="tcp", protocol=Protocol.TCP),),
        location="MESH_EXTERNAL",
        resolution=Resolution.NONE,
    )
    snap = snapshot(reviews, ratings, db, workload("reviews-v1", POD_IP, {"app": "reviews"}), *extra)
    return snap


def reviews_sidecar(snap: MeshSnapshot, metadata: Mapping[str, str] | None = None) -> Proxy:
    node_id = f"sidecar~{POD_IP}~reviews-v1.default~default.svc.cluster.local"
    return resolve_proxy(parse_node_id(node_id, "", {**CAPTURED, **(metadata or {})}), snap)


def served(type_url: str, proxy: Proxy, snap: MeshSnapshot) -> dict[str, Message]:
    """What the registry serves the proxy of one type, by resource name."""
    out: dict[str, Message] = {}
    for message in generated_type(type_url, proxy, snap):
        out[str(getattr(message, "name"))] = message  # noqa: B009 (Message has no ``name``: its subclasses do)
    return out
