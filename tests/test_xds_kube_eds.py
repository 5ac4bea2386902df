"""Endpoint-only changes of the Kubernetes registry are EDS-only pushes (Istio's EDS update), over real gRPC: a
sidecar pod's ADS stream gets one ClusterLoadAssignment push and nothing else, and the snapshot reuses every
other type; a change that is not endpoint-only still reaches CDS."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryResponse

from envoy_bootstrap.bootstrap import sidecar_node_id
from meshplane import names
from pilot.generate.registry import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    NAME_TABLE_TYPE,
    PROXY_CONFIG_TYPE,
    ROUTE_TYPE,
)
from pilot.kube import ChangeLevel, KubernetesRegistry, WatchEvent
from pilot.model import SERVICE_ENTRIES
from pilot.xds import DiscoveryServer
from tests import kube_builders as kb
from tests.xds_fakes import DEFAULT_ROUTES, AdsStream, wait_until

REVIEWS = "reviews.bookinfo.svc.cluster.local"
REVIEWS_CLUSTER = names.outbound_cluster_name(9080, "", REVIEWS)
V1 = "reviews-v1-7d8f9c6b5-abcde"
V1_BIS = "reviews-v1-7d8f9c6b5-qrstu"
PRODUCTPAGE = "productpage-v1-5f6d7c8b9-xyzzy"
NODE = sidecar_node_id(workload=PRODUCTPAGE, namespace="bookinfo", address="10.244.0.50", domain_suffix="cluster.local")


def _slice(*pods: tuple[str, str]) -> dict[str, Any]:
    return kb.endpoint_slice(endpoints=[kb.endpoint(ip, name) for name, ip in pods])


def _bookinfo() -> KubernetesRegistry:
    kube = KubernetesRegistry()
    kube.replace("Node", [kb.node()])
    kube.replace(
        "Pod",
        [
            kb.pod(V1, "10.244.0.12"),
            kb.pod(V1_BIS, "10.244.0.13"),  # same labels and service account: its endpoint changes no SAN check
            kb.pod(PRODUCTPAGE, "10.244.0.50", labels={"app": "productpage", "version": "v1"}),
        ],
    )
    kube.replace("Service", [kb.service()])
    kube.replace("EndpointSlice", [_slice((V1, "10.244.0.12"))])
    return kube


def _addresses(response: DiscoveryResponse) -> dict[str, list[str]]:
    found = {}
    for packed in response.resources:
        assignment = ClusterLoadAssignment()
        packed.Unpack(assignment)
        found[assignment.cluster_name] = sorted(
            e.endpoint.address.socket_address.address for group in assignment.endpoints for e in group.lb_endpoints
        )
    return found


async def _sync(stream: AdsStream) -> dict[str, DiscoveryResponse]:
    """CDS, EDS, LDS, RDS requested and ACKed, as Envoy starts."""
    responses: dict[str, DiscoveryResponse] = {}
    subscriptions = {
        CLUSTER_TYPE: [],
        ENDPOINT_TYPE: [REVIEWS_CLUSTER],
        LISTENER_TYPE: [],
        ROUTE_TYPE: [DEFAULT_ROUTES],
    }
    for type_url, subscribed in subscriptions.items():
        await stream.request(type_url, subscribed, node=NODE if type_url == CLUSTER_TYPE else None)
        response = await stream.recv()
        assert response.type_url == type_url
        await stream.ack(response, subscribed)
        responses[type_url] = response
    return responses


@contextlib.asynccontextmanager
async def _synced(kube: KubernetesRegistry) -> AsyncIterator[tuple[DiscoveryServer, AdsStream, dict[str, Any]]]:
    """A server with the registry, and a stream of the productpage pod's sidecar that went through the start-up."""
    server = DiscoveryServer(debounce=0.01, registries=(SERVICE_ENTRIES, kube))
    server.update_config({}, 1)
    await server.start("127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stream = AdsStream(channel)
            yield server, stream, await _sync(stream)
            await stream.close()
    finally:
        await server.stop(grace=0)


async def test_endpoint_slice_change_pushes_only_load_assignments() -> None:
    kube = _bookinfo()
    async with _synced(kube) as (server, stream, first):
        assert _addresses(first[ENDPOINT_TYPE]) == {REVIEWS_CLUSTER: ["10.244.0.12"]}
        built = server.snapshot
        both = _slice((V1, "10.244.0.12"), (V1_BIS, "10.244.0.13"))
        change = kube.apply(WatchEvent(type="MODIFIED", kind="EndpointSlice", object=both))
        assert (change.level, change.hosts) == (ChangeLevel.ENDPOINTS, {REVIEWS})
        server.registries_changed()
        pushed = await stream.recv()
        assert pushed.type_url == ENDPOINT_TYPE
        assert pushed.version_info != first[ENDPOINT_TYPE].version_info
        assert _addresses(pushed) == {REVIEWS_CLUSTER: ["10.244.0.12", "10.244.0.13"]}
        await stream.ack(pushed, [REVIEWS_CLUSTER])
        await stream.assert_silent()  # no CDS, LDS or RDS
        await wait_until(lambda: server.snapshot is not built)
        cache = server.cache
        assert cache is not None and cache.snapshot.changed_kinds == {"Endpoints"}
        assert cache.reused_types == {CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE, NAME_TABLE_TYPE, PROXY_CONFIG_TYPE}


async def test_a_service_change_still_reaches_clusters() -> None:
    kube = _bookinfo()
    async with _synced(kube) as (server, stream, _):
        details = kb.service("details", cluster_ip="10.96.7.7")
        assert kube.apply(WatchEvent(type="ADDED", kind="Service", object=details)).level is ChangeLevel.SERVICES
        server.registries_changed()
        pushed = await stream.recv()
        assert pushed.type_url == CLUSTER_TYPE
        clusters = []
        for packed in pushed.resources:
            cluster = Cluster()
            packed.Unpack(cluster)
            clusters.append(cluster.name)
        assert names.outbound_cluster_name(9080, "", "details.bookinfo.svc.cluster.local") in clusters
