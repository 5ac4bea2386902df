"""A changed EDS cluster warms only with its ClusterLoadAssignment: Pilot resends it even when it did not change.

Envoy keeps an updated EDS cluster warming, and holds the CDS ACK, until it receives the cluster's assignment
again. Found end to end: a DestinationRule ``tls`` change altered every cluster's transport socket but no
endpoint, and no sidecar ever ACKed the new clusters (e2e/test_pod_mtls.py::test_destination_rule_tls_overrides...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Hashable
from typing import Any

import grpc
import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster

from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
from pilot.model import MeshSnapshot
from pilot.xds import DiscoveryServer
from tests.xds_fakes import (
    DEFAULT_ROUTES,
    PRODUCTPAGE,
    REVIEWS_V1_CLUSTER,
    AdsStream,
    bookinfo,
    configs_of,
    fake_generators,
    resource_names,
    virtual_service,
    wait_until,
)

WAIT = 5.0


def _generators_whose_clusters_follow_virtual_services() -> dict[str, Any]:
    """The fake generators, but every cluster's connect timeout counts the VirtualServices: a VirtualService change
    then changes every cluster and no endpoint (like a DestinationRule tls change does for real)."""
    generators = fake_generators()
    plain = generators[CLUSTER_TYPE]

    def clusters(scope: tuple[Hashable, ...], snapshot: MeshSnapshot) -> list[Cluster]:
        built = [Cluster.FromString(c.SerializeToString()) for c in plain.build_scope(scope, snapshot)]
        for cluster in built:
            cluster.connect_timeout.seconds = 1 + len(snapshot.virtual_services)
        return built

    generators[CLUSTER_TYPE] = dataclasses.replace(
        plain, build_scope=clusters, affected_by=plain.affected_by | {"VirtualService"}
    )
    return generators


@pytest.fixture
async def channel() -> AsyncIterator[tuple[DiscoveryServer, grpc.aio.Channel]]:
    server = DiscoveryServer(generators=_generators_whose_clusters_follow_virtual_services(), debounce=0.01)
    server.update_config(bookinfo(), 1)
    await server.start("127.0.0.1:0")
    try:
        await wait_until(lambda: server.ready, WAIT)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield server, channel
    finally:
        await server.stop(grace=0)


async def test_a_changed_cluster_gets_its_unchanged_assignment_again(
    channel: tuple[DiscoveryServer, grpc.aio.Channel],
) -> None:
    server, grpc_channel = channel
    stream = AdsStream(grpc_channel)
    for type_url, names in ((CLUSTER_TYPE, []), (ENDPOINT_TYPE, [REVIEWS_V1_CLUSTER]), (LISTENER_TYPE, [])):
        await stream.request(type_url, names, node=PRODUCTPAGE if type_url == CLUSTER_TYPE else None)
        await stream.ack(await stream.recv(), names)
    await stream.request(ROUTE_TYPE, [DEFAULT_ROUTES])
    await stream.ack(await stream.recv(), [DEFAULT_ROUTES])

    server.update_config(configs_of(*bookinfo().values(), virtual_service("ratings", "v1")), 2)

    clusters = await stream.recv()
    assert clusters.type_url == CLUSTER_TYPE
    endpoints = await stream.recv()
    assert endpoints.type_url == ENDPOINT_TYPE, "the assignment follows its changed cluster"
    assert REVIEWS_V1_CLUSTER in resource_names(endpoints)


async def test_delta_resends_a_changed_clusters_unchanged_assignment(
    channel: tuple[DiscoveryServer, grpc.aio.Channel],
) -> None:
    server, grpc_channel = channel
    stream = AdsStream(grpc_channel, delta=True)
    await stream.delta_request(CLUSTER_TYPE, node=PRODUCTPAGE, subscribe=["*"])
    clusters = await stream.recv()
    await stream.delta_request(CLUSTER_TYPE, nonce=clusters.nonce)
    await stream.delta_request(ENDPOINT_TYPE, subscribe=[REVIEWS_V1_CLUSTER])
    endpoints = await stream.recv()
    assert resource_names(endpoints) == [REVIEWS_V1_CLUSTER]
    await stream.delta_request(ENDPOINT_TYPE, nonce=endpoints.nonce)
    await stream.delta_request(LISTENER_TYPE, subscribe=["*"])
    await stream.delta_request(LISTENER_TYPE, nonce=(await stream.recv()).nonce)

    server.update_config(configs_of(*bookinfo().values(), virtual_service("ratings", "v1")), 2)

    changed = await stream.recv()
    assert changed.type_url == CLUSTER_TYPE
    again = await stream.recv()
    assert again.type_url == ENDPOINT_TYPE, "the assignment follows its changed cluster"
    assert resource_names(again) == [REVIEWS_V1_CLUSTER], "resent although its version did not change"
