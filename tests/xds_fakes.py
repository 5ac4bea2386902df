"""Test support for the xDS layer: small fake generators, config builders, and an ADS client with bounded waits.

The fake generators follow the registry's contract (shared scopes + per-proxy part, ``affected_by``) with tiny,
predictable resources, so that xDS tests assert protocol behaviour and not the real builders' output. They count
their ``build_scope`` calls to prove that a scope is built once per snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Hashable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import grpc
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.endpoint.v3.endpoint_components_pb2 import Endpoint as LbEndpoint
from envoy.config.endpoint.v3.endpoint_components_pb2 import LbEndpoint as LbEndpointWrapper
from envoy.config.endpoint.v3.endpoint_components_pb2 import LocalityLbEndpoints
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_components_pb2 import Route, RouteAction, RouteMatch, VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)

from meshplane import names
from pilot.config.origin import Origin
from pilot.config.types import (
    ConfigKey,
    ConfigMeta,
    Destination,
    DestinationRule,
    HTTPRoute,
    HTTPRouteDestination,
    Protocol,
    Resolution,
    Resource,
    ServiceEntry,
    ServicePort,
    Subset,
    VirtualService,
    WorkloadEntry,
)
from pilot.generate.registry import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    REGISTRY_KINDS,
    ROUTE_TYPE,
    TypeGenerator,
)
from pilot.model import MeshSnapshot, Proxy, destination_rule_for, labels_match, virtual_services_for
from pilot.xds import DiscoveryServer

WAIT = 5.0  # seconds: every wait in these tests is bounded by this


# ------------------------------------------------------------------------------------------ config builders


def _meta(kind: str, namespace: str, name: str, *content: object) -> ConfigMeta:
    digest = hashlib.sha256(repr(content).encode()).hexdigest()
    return ConfigMeta(
        key=ConfigKey(kind=kind, namespace=namespace, name=name),
        origin=Origin(file="test.yaml", line=1),
        content_hash=digest,
    )


def service_entry(name: str, namespace: str = "default", port: int = 9080) -> ServiceEntry:
    host = f"{name}.{namespace}.svc.cluster.local"
    return ServiceEntry(
        meta=_meta("ServiceEntry", namespace, name, host, port),
        hosts=(host,),
        ports=(ServicePort(number=port, name="http", protocol=Protocol.HTTP),),
        location="MESH_INTERNAL",
        resolution=Resolution.STATIC,
        workload_selector=MappingProxyType({"app": name}),
    )


def workload_entry(
    app: str, version: str, address: str, namespace: str = "default", name: str | None = None
) -> WorkloadEntry:
    """A workload of ``app`` labelled ``version``, named ``<app>-<version>`` unless ``name`` is given."""
    labels = MappingProxyType({"app": app, "version": version})
    return WorkloadEntry(
        meta=_meta("WorkloadEntry", namespace, name or f"{app}-{version}", address, sorted(labels.items())),
        address=address,
        labels=labels,
        ports=MappingProxyType({"http": 19080}),
    )


def destination_rule(host: str, subsets: Sequence[str], namespace: str = "default") -> DestinationRule:
    return DestinationRule(
        meta=_meta("DestinationRule", namespace, host, host, tuple(subsets)),
        host=host,
        subsets=tuple(Subset(name=s, labels=MappingProxyType({"version": s})) for s in subsets),
    )


def virtual_service(host: str, subset: str, namespace: str = "default") -> VirtualService:
    route = HTTPRoute(route=(HTTPRouteDestination(destination=Destination(host=host, subset=subset)),))
    return VirtualService(meta=_meta("VirtualService", namespace, host, host, subset), hosts=(host,), http=(route,))


def configs_of(*resources: Resource) -> dict[ConfigKey, Resource]:
    return {r.meta.key: r for r in resources}


def bookinfo(reviews_subset: str = "v1") -> dict[ConfigKey, Resource]:
    """reviews (v1 at .11, v2 at .12) and productpage (.21), a DestinationRule and a VirtualService for reviews."""
    return configs_of(
        service_entry("reviews"),
        service_entry("productpage"),
        workload_entry("reviews", "v1", "127.0.0.11"),
        workload_entry("reviews", "v2", "127.0.0.12"),
        workload_entry("productpage", "v1", "127.0.0.21"),
        destination_rule("reviews", ("v1", "v2")),
        virtual_service("reviews", reviews_subset),
    )


def node_id(workload: str, address: str, namespace: str = "default") -> str:
    return f"sidecar~{address}~{workload}.{namespace}~{namespace}.svc.cluster.local"


PRODUCTPAGE = node_id("productpage-v1", "127.0.0.21")
REVIEWS_V1 = node_id("reviews-v1", "127.0.0.11")
REVIEWS_HOST = "reviews.default.svc.cluster.local"
REVIEWS_CLUSTER = names.outbound_cluster_name(9080, "", REVIEWS_HOST)
REVIEWS_V1_CLUSTER = names.outbound_cluster_name(9080, "v1", REVIEWS_HOST)
REVIEWS_V2_CLUSTER = names.outbound_cluster_name(9080, "v2", REVIEWS_HOST)
DEFAULT_ROUTES = "9080"  # the outbound route table of port 9080 (Istio's name), every bookinfo service's port


# ------------------------------------------------------------------------------------------ fake generators


def _outbound_clusters(snapshot: MeshSnapshot) -> list[tuple[str, str, list[str]]]:
    """(cluster name, host, endpoint addresses) for every service port and DestinationRule subset."""
    out = []
    for service in snapshot.services.values():
        rule = destination_rule_for(snapshot, service.host)
        for port in service.ports:
            endpoints = service.endpoints.get(port.number, ())
            out.append(
                (
                    names.outbound_cluster_name(port.number, "", service.host),
                    service.host,
                    [e.address for e in endpoints],
                )
            )
            for subset in rule.subsets if rule else ():
                chosen = [e.address for e in endpoints if labels_match(subset.labels, e.labels)]
                out.append((names.outbound_cluster_name(port.number, subset.name, service.host), service.host, chosen))
    return out


def fake_generators(calls: Counter[str] | None = None) -> dict[str, TypeGenerator]:
    """CDS/EDS/LDS/RDS generators with the registry's shape; ``calls`` counts build_scope calls per type."""
    counter: Counter[str] = calls if calls is not None else Counter()

    def clusters(scope: tuple[Hashable, ...], snapshot: MeshSnapshot) -> list[Cluster]:
        counter["cds"] += 1
        return [
            Cluster(name=name, type=Cluster.EDS, eds_cluster_config=Cluster.EdsClusterConfig(service_name=name))
            for name, _, _ in _outbound_clusters(snapshot)
        ]

    def inbound_clusters(proxy: Proxy, snapshot: MeshSnapshot) -> list[Cluster]:
        return [Cluster(name=names.inbound_cluster_name(i.port.number), type=Cluster.STATIC) for i in proxy.instances]

    def load_assignments(scope: tuple[Hashable, ...], snapshot: MeshSnapshot) -> list[ClusterLoadAssignment]:
        counter["eds"] += 1
        return [
            ClusterLoadAssignment(
                cluster_name=name,
                endpoints=[
                    LocalityLbEndpoints(
                        lb_endpoints=[
                            LbEndpointWrapper(endpoint=LbEndpoint(address=_address(address, 9080)))
                            for address in addresses
                        ]
                    )
                ],
            )
            for name, _, addresses in _outbound_clusters(snapshot)
        ]

    def listeners(proxy: Proxy, snapshot: MeshSnapshot) -> list[Listener]:
        """virtualOutbound, then a virtualInbound whose name says the workload's address and served ports (so that a
        test sees a proxy's own part rebuilt)."""
        ports = "_".join(str(instance.port.number) for instance in proxy.instances)
        return [
            Listener(name="virtualOutbound", address=_address("0.0.0.0", names.OUTBOUND_CAPTURE_PORT)),
            Listener(
                name=f"virtualInbound_{proxy.address}_{ports}", address=_address("0.0.0.0", names.INBOUND_CAPTURE_PORT)
            ),
        ]

    def route_tables(scope: tuple[Hashable, ...], snapshot: MeshSnapshot) -> list[RouteConfiguration]:
        """One table per port (``9080``): the virtual hosts of every service with that port."""
        counter["rds"] += 1
        vhosts: dict[int, list[VirtualHost]] = {}
        for service in snapshot.services.values():
            rules = virtual_services_for(snapshot, service.host)
            subset = rules[0].http[0].route[0].destination.subset if rules else ""
            for port in service.ports:
                cluster = names.outbound_cluster_name(port.number, subset, service.host)
                vhosts.setdefault(port.number, []).append(
                    VirtualHost(
                        name=f"{service.host}:{port.number}",
                        domains=[service.host],
                        routes=[Route(match=RouteMatch(prefix="/"), route=RouteAction(cluster=cluster))],
                    )
                )
        return [RouteConfiguration(name=str(port), virtual_hosts=hosts) for port, hosts in sorted(vhosts.items())]

    def inbound_routes(proxy: Proxy, snapshot: MeshSnapshot) -> list[RouteConfiguration]:
        return [RouteConfiguration(name=names.inbound_route_name(i.port.number)) for i in proxy.instances]

    def none(proxy: Proxy, snapshot: MeshSnapshot) -> list[Any]:
        return []

    def no_scope(scope: tuple[Hashable, ...], snapshot: MeshSnapshot) -> list[Any]:
        return []

    return {
        CLUSTER_TYPE: TypeGenerator(
            type_url=CLUSTER_TYPE,
            affected_by=REGISTRY_KINDS | {"DestinationRule"},
            wildcard=True,
            scopes=lambda proxy: [("outbound",)],
            build_scope=clusters,
            build_proxy=inbound_clusters,
        ),
        ENDPOINT_TYPE: TypeGenerator(
            type_url=ENDPOINT_TYPE,
            affected_by=REGISTRY_KINDS | {"DestinationRule"},
            wildcard=False,
            scopes=lambda proxy: [("eds",)],
            build_scope=load_assignments,
            build_proxy=none,
        ),
        LISTENER_TYPE: TypeGenerator(
            type_url=LISTENER_TYPE,
            affected_by=REGISTRY_KINDS,
            wildcard=True,
            scopes=lambda proxy: [],
            build_scope=no_scope,
            build_proxy=listeners,
        ),
        ROUTE_TYPE: TypeGenerator(
            type_url=ROUTE_TYPE,
            affected_by=REGISTRY_KINDS | {"VirtualService", "DestinationRule"},
            wildcard=False,
            scopes=lambda proxy: [("outbound_http", proxy.namespace)],
            build_scope=route_tables,
            build_proxy=inbound_routes,
        ),
    }


def _address(ip: str, port: int) -> Address:
    return Address(socket_address=SocketAddress(address=ip, port_value=port))


# ------------------------------------------------------------------------------------------ ADS client


class AdsStream:
    """One ADS stream (SotW or delta) from the test's side, every wait bounded by ``WAIT``.

    A background task reads the stream into a queue: a read that times out must not cancel the RPC itself.
    """

    def __init__(self, channel: grpc.aio.Channel, *, delta: bool = False) -> None:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        self.delta = delta
        self.call: Any = stub.DeltaAggregatedResources() if delta else stub.StreamAggregatedResources()
        self._received: asyncio.Queue[Any] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while (message := await self.call.read()) is not grpc.aio.EOF:
                self._received.put_nowait(message)
            self._received.put_nowait(EOFError("the server closed the stream"))
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as exc:
            self._received.put_nowait(exc)

    async def send(self, request: DiscoveryRequest | DeltaDiscoveryRequest) -> None:
        await asyncio.wait_for(self.call.write(request), WAIT)

    async def recv(self, timeout: float = WAIT) -> Any:
        message = await asyncio.wait_for(self._received.get(), timeout)
        if isinstance(message, BaseException):
            raise message
        return message

    async def assert_silent(self, window: float = 0.3) -> None:
        """Nothing arrives within ``window`` seconds (used after the server had every reason to answer)."""
        try:
            message = await asyncio.wait_for(self._received.get(), window)
        except TimeoutError:
            return
        raise AssertionError(f"expected no response, got: {message}")

    async def request(
        self,
        type_url: str,
        names: Iterable[str] = (),
        *,
        node: str | None = None,
        version: str = "",
        nonce: str = "",
        error: str | None = None,
    ) -> None:
        request = DiscoveryRequest(
            type_url=type_url, resource_names=list(names), version_info=version, response_nonce=nonce
        )
        if node is not None:
            request.node.id = node
        if error is not None:
            request.error_detail.code = 3
            request.error_detail.message = error
        await self.send(request)

    async def ack(self, response: DiscoveryResponse, names: Iterable[str] = ()) -> None:
        await self.request(response.type_url, names, version=response.version_info, nonce=response.nonce)

    async def delta_request(
        self,
        type_url: str,
        *,
        node: str | None = None,
        subscribe: Iterable[str] = (),
        unsubscribe: Iterable[str] = (),
        nonce: str = "",
        initial: Mapping[str, str] | None = None,
        error: str | None = None,
    ) -> None:
        request = DeltaDiscoveryRequest(
            type_url=type_url,
            resource_names_subscribe=list(subscribe),
            resource_names_unsubscribe=list(unsubscribe),
            response_nonce=nonce,
            initial_resource_versions=dict(initial or {}),
        )
        if node is not None:
            request.node.id = node
        if error is not None:
            request.error_detail.code = 3
            request.error_detail.message = error
        await self.send(request)

    async def close(self) -> None:
        self.call.cancel()
        await asyncio.wait_for(self._reader, WAIT)


def resource_names(response: DiscoveryResponse | DeltaDiscoveryResponse) -> list[str]:
    """Names of the resources in a response (unpacking each Any)."""
    out = []
    for item in response.resources:
        packed = item.resource if isinstance(response, DeltaDiscoveryResponse) else item
        message: Any
        for cls in (Cluster, ClusterLoadAssignment, Listener, RouteConfiguration):
            if packed.Is(cls.DESCRIPTOR):
                message = cls()
                packed.Unpack(message)
                out.append(message.cluster_name if cls is ClusterLoadAssignment else message.name)
    return out


def unpack_route(response: DiscoveryResponse, name: str) -> RouteConfiguration:
    for packed in response.resources:
        table = RouteConfiguration()
        packed.Unpack(table)
        if table.name == name:
            return table
    raise AssertionError(f"no route table {name!r} in {resource_names(response)}")


async def wait_until(predicate: Any, timeout: float = WAIT) -> None:
    """Poll ``predicate()`` (every 10ms) until true, or fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def serving(configs: Mapping[ConfigKey, Resource], **options: Any) -> AsyncIterator[DiscoveryServer]:
    """A ``DiscoveryServer(**options)`` (the real generators unless ``generators=`` is given) serving ``configs`` as
    version 1 on a free loopback port, ready; stopped on exit."""
    server = DiscoveryServer(**options)
    server.update_config(configs, 1)
    await server.start("127.0.0.1:0")
    try:
        await wait_until(lambda: server.ready)
        yield server
    finally:
        await server.stop(grace=0)
