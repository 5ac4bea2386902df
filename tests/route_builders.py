"""Small builders for the RDS tests: config dataclasses and snapshots without YAML."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from envoy.config.route.v3.route_components_pb2 import Route, VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration

from pilot.config.origin import Origin
from pilot.config.types import (
    ConfigKey,
    ConfigMeta,
    Destination,
    HTTPRoute,
    HTTPRouteDestination,
    Protocol,
    Resolution,
    Resource,
    ServiceEntry,
    ServicePort,
    StringMatch,
    VirtualService,
    WorkloadEntry,
)
from pilot.generate import port_routes
from pilot.generate.registry import GENERATORS, ROUTE_TYPE
from pilot.model import MeshSnapshot, build_snapshot

NS = "default"
REVIEWS = "reviews.default.svc.cluster.local"


def meta(kind: str, name: str, namespace: str = NS) -> ConfigMeta:
    key = ConfigKey(kind=kind, namespace=namespace, name=name)
    return ConfigMeta(key=key, origin=Origin(file=f"{name}.yaml", line=1))


def port(number: int, protocol: Protocol = Protocol.HTTP, name: str = "") -> ServicePort:
    return ServicePort(number=number, name=name or f"{protocol.value.lower()}-{number}", protocol=protocol)


def service_entry(
    name: str,
    host: str,
    ports: tuple[ServicePort, ...] = (port(9080),),
    namespace: str = NS,
    export_to: tuple[str, ...] = (),
    selector: Mapping[str, str] | None = None,
) -> ServiceEntry:
    return ServiceEntry(
        meta=meta("ServiceEntry", name, namespace),
        hosts=(host,),
        ports=ports,
        location="MESH_INTERNAL",
        resolution=Resolution.STATIC,
        export_to=export_to,
        workload_selector=MappingProxyType(dict(selector)) if selector is not None else None,
    )


def workload(
    name: str, address: str, labels: Mapping[str, str], ports: Mapping[str, int] | None = None, namespace: str = NS
) -> WorkloadEntry:
    return WorkloadEntry(
        meta=meta("WorkloadEntry", name, namespace),
        address=address,
        labels=MappingProxyType(dict(labels)),
        ports=MappingProxyType(dict(ports or {})),
    )


def virtual_service(
    name: str,
    hosts: tuple[str, ...],
    *http: HTTPRoute,
    namespace: str = NS,
    gateways: tuple[str, ...] = (),
    export_to: tuple[str, ...] = (),
) -> VirtualService:
    return VirtualService(
        meta=meta("VirtualService", name, namespace),
        hosts=hosts,
        gateways=gateways,
        http=http,
        export_to=export_to,
    )


def to(host: str, subset: str = "", port_number: int | None = None, weight: int | None = None) -> HTTPRouteDestination:
    return HTTPRouteDestination(destination=Destination(host=host, subset=subset, port=port_number), weight=weight)


def exact(value: str) -> StringMatch:
    return StringMatch(exact=value)


def prefix(value: str) -> StringMatch:
    return StringMatch(prefix=value)


def regex(value: str) -> StringMatch:
    return StringMatch(regex=value)


def headers_map(**values: StringMatch) -> Mapping[str, StringMatch]:
    return MappingProxyType({k.replace("_", "-"): v for k, v in values.items()})


def snapshot(*configs: Resource) -> MeshSnapshot:
    return build_snapshot({c.meta.key: c for c in configs}, version=1)


def route_tables(snap: MeshSnapshot, namespace: str = NS) -> dict[str, RouteConfiguration]:
    """The outbound route tables of ``namespace``'s sidecars by name (the port: ``"9080"``), as RDS serves them."""
    tables = GENERATORS[ROUTE_TYPE].build_scope((port_routes.OUTBOUND_HTTP_SCOPE, namespace), snap)
    return {table.name: table for table in tables}


def route_table(snap: MeshSnapshot, namespace: str = NS, port: int = 9080) -> RouteConfiguration:
    """The outbound route table of ``port`` (Istio's RDS name ``"9080"``) of ``namespace``'s sidecars."""
    tables = route_tables(snap, namespace)
    assert str(port) in tables, f"no route table {port} in {sorted(tables)}"
    return tables[str(port)]


def vhost(table: RouteConfiguration, name: str) -> VirtualHost:
    found = [vh for vh in table.virtual_hosts if vh.name == name]
    assert found, f"no virtual host {name!r} in {[vh.name for vh in table.virtual_hosts]}"
    return found[0]


def reviews_routes(*http: HTTPRoute, extra: tuple[Resource, ...] = (), vhost_port: int = 9080) -> list[Route]:
    """The routes of ``reviews:<vhost_port>`` in the default namespace's table, for a VS with these HTTP routes.

    reviews serves 9080 and 9090 (both HTTP); ratings (one port, 8080) and details (two ports) are there to be
    routed to."""
    configs: tuple[Resource, ...] = (
        service_entry("reviews", REVIEWS, (port(9080), port(9090))),
        service_entry("ratings", "ratings.default.svc.cluster.local", (port(8080),)),
        service_entry("details", "details.default.svc.cluster.local", (port(9080), port(9443, Protocol.HTTP2))),
        virtual_service("reviews", ("reviews",), *http),
        *extra,
    )
    return list(vhost(route_table(snapshot(*configs), port=vhost_port), f"{REVIEWS}:{vhost_port}").routes)
