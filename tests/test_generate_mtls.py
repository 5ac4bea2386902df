"""Mutual TLS in generated config: inbound chains per PeerAuthentication mode, SDS references, proxies without SDS
unchanged, and real ``envoy --mode validate`` over a whole mTLS config with the bootstrap's ``sds-grpc`` cluster.
(Outbound TLS: ``test_generate_cluster_tls.py``.)"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import structlog
from envoy.config.listener.v3.listener_components_pb2 import FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import SdsSecretConfig
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import DownstreamTlsContext, UpstreamTlsContext
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import Message

from envoy_bootstrap.bootstrap import HostPort, build_sds_cluster, write_citadel_trust
from pilot.config.types import (
    ClientTLSSettings,
    DestinationRule,
    MtlsMode,
    PortTrafficPolicy,
    TrafficPolicy,
)
from pilot.generate import clusters, endpoints, filter_chains, listeners
from pilot.generate.listener_tls import MESH_ALPNS
from pilot.generate.registry import GENERATORS, LISTENER_TYPE, NAME_TABLE_TYPE, PUSH_ORDER, ROUTE_TYPE
from pilot.model import MeshSnapshot, Proxy
from pilot.xds import DiscoveryServer
from tests.mtls_builders import (
    API,
    DB,
    REVIEWS,
    URI,
    MakeMeta,
    dr_tls,
    hcm_of,
    listener_named,
    mesh,
    outbound,
    peer_auth,
    proxy_of,
    sans,
    snapshot_of,
    unpack,
    upstream_tls,
    write_test_pki,
)
from tests.source_builders import generated_type
from tests.xds_fakes import AdsStream, wait_until
from tests.xdstest import check_resources, envoy_validate

# ------------------------------------------------------------------------------------------------ inbound


ORIGINAL_DST = "envoy.filters.listener.original_dst"


def kind(chain: FilterChain, port: int) -> str:
    """``mtls``, ``tls-passthrough`` or ``plaintext``: a chain of virtualInbound for ``port`` is named
    ``inbound_0.0.0.0_<port>[_<kind>]``, the kind said only when the port has several chains."""
    prefix = f"inbound_0.0.0.0_{port}"
    assert chain.name.startswith(prefix) and chain.filter_chain_match.destination_port.value == port, chain.name
    said = chain.name.removeprefix(prefix).lstrip("_")
    return said or ("mtls" if chain.HasField("transport_socket") else "plaintext")


@pytest.mark.parametrize("mode", ["STRICT", "PERMISSIVE", "DISABLE"])
def test_inbound_http_chains_per_mode(make_meta: MakeMeta, mode: MtlsMode) -> None:
    snapshot = snapshot_of(*mesh(make_meta, peer_auth(make_meta, mode)))
    listener = listener_named(proxy_of(snapshot, "reviews-v1", "127.0.0.21"), snapshot, 9080)
    chains = {kind(chain, 9080): chain for chain in listener.filter_chains}
    inspectors = [f.name for f in listener.listener_filters]

    if mode == "DISABLE":
        assert (list(chains), inspectors) == (["plaintext"], [ORIGINAL_DST])
    elif mode == "STRICT":
        assert (list(chains), inspectors) == (["mtls"], [ORIGINAL_DST])
        match = chains["mtls"].filter_chain_match
        assert (match.transport_protocol, list(match.application_protocols)) == ("", [])
    else:
        assert list(chains) == ["mtls", "plaintext"]
        assert inspectors == [ORIGINAL_DST, "envoy.filters.listener.tls_inspector"]
        assert chains["mtls"].filter_chain_match.transport_protocol == "tls"
        assert list(chains["mtls"].filter_chain_match.application_protocols) == list(MESH_ALPNS)
        assert chains["plaintext"].filter_chain_match.transport_protocol == "raw_buffer"
        assert list(chains["plaintext"].filter_chain_match.application_protocols) == []
        assert listener.continue_on_listener_filters_timeout
    if "plaintext" in chains:
        plaintext = chains["plaintext"]
        assert not plaintext.HasField("transport_socket")
        assert hcm_of(plaintext).forward_client_cert_details == HttpConnectionManager.SANITIZE  # no spoofed XFCC
    if "mtls" in chains:
        tls = unpack(DownstreamTlsContext(), chains["mtls"].transport_socket.typed_config)
        common = tls.common_tls_context
        assert tls.require_client_certificate.value
        assert [s.name for s in common.tls_certificate_sds_secret_configs] == ["default"]
        assert common.combined_validation_context.validation_context_sds_secret_config.name == "ROOTCA"
        assert sans(tls) == [(URI, "spiffe://cluster.local/")]
        assert list(common.alpn_protocols) == ["h2", "http/1.1"]
        hcm = hcm_of(chains["mtls"])
        assert hcm.forward_client_cert_details == HttpConnectionManager.SANITIZE_SET
        details = hcm.set_current_client_cert_details
        assert (details.uri, details.subject.value, details.dns) == (True, False, False)
    if len(chains) == 2:  # the same connection manager on both chains, but for XFCC
        tls_hcm, plain_hcm = hcm_of(chains["mtls"]), hcm_of(chains["plaintext"])
        for hcm in (tls_hcm, plain_hcm):
            hcm.ClearField("forward_client_cert_details")
            hcm.ClearField("set_current_client_cert_details")
        assert tls_hcm == plain_hcm


TCP_PORT = 5432  # mesh(): reviews' TCP service port (app port 15432)
HTTP_PORT = 9080


@pytest.mark.parametrize(
    ("mode", "port", "expected"),
    [
        ("STRICT", TCP_PORT, [("mtls", "", (), True)]),  # Istio's STRICT matches no ALPN
        (
            "PERMISSIVE",
            TCP_PORT,
            [
                ("mtls", "tls", MESH_ALPNS, True),
                ("tls-passthrough", "tls", (), False),
                ("plaintext", "raw_buffer", (), False),
            ],
        ),
        ("PERMISSIVE", HTTP_PORT, [("mtls", "tls", MESH_ALPNS, True), ("plaintext", "raw_buffer", (), False)]),
        ("DISABLE", TCP_PORT, [("plaintext", "", (), False)]),
    ],
    ids=["strict-tcp", "permissive-tcp-passes-app-tls", "permissive-http-no-tls-passthrough", "disable-tcp"],
)
def test_inbound_chain_matches_per_mode_and_protocol(
    make_meta: MakeMeta, mode: MtlsMode, port: int, expected: list[tuple[str, str, tuple[str, ...], bool]]
) -> None:
    """(chain, transport_protocol, application_protocols, terminates TLS) per mode; a TCP port under PERMISSIVE
    passes TLS without a mesh ALPN (an app's own TLS from outside the mesh) to the app untouched."""
    snapshot = snapshot_of(*mesh(make_meta, peer_auth(make_meta, mode)))
    listener = listener_named(proxy_of(snapshot, "reviews-v1", "127.0.0.21"), snapshot, port)
    got = [
        (
            kind(c, port),
            c.filter_chain_match.transport_protocol,
            tuple(c.filter_chain_match.application_protocols),
            c.HasField("transport_socket"),
        )
        for c in listener.filter_chains
    ]
    assert got == expected
    if port == TCP_PORT:
        for chain in listener.filter_chains:
            assert [f.name for f in chain.filters] == [filter_chains.TCP_PROXY]
            assert unpack(TcpProxy(), chain.filters[0].typed_config).cluster == f"inbound|{TCP_PORT}||"


def test_inbound_tcp_strict_terminates_tls_before_tcp_proxy(make_meta: MakeMeta) -> None:
    snapshot = snapshot_of(*mesh(make_meta, peer_auth(make_meta, "STRICT")))
    (chain,) = listener_named(proxy_of(snapshot, "reviews-v1", "127.0.0.21"), snapshot, 5432).filter_chains
    assert [f.name for f in chain.filters] == [filter_chains.TCP_PROXY]
    assert unpack(DownstreamTlsContext(), chain.transport_socket.typed_config).require_client_certificate.value


PORTS = (9080, 9090, 5432)


def test_port_level_modes_are_keyed_by_workload_port(make_meta: MakeMeta) -> None:
    """A workload policy STRICT with the GRPC app port (19090) DISABLE and the TCP one (15432) PERMISSIVE."""
    policy = peer_auth(make_meta, "STRICT", namespace="default", ports={19090: "DISABLE", 15432: "PERMISSIVE"})
    snapshot = snapshot_of(*mesh(make_meta, policy))
    proxy = proxy_of(snapshot, "reviews-v1", "127.0.0.21")
    chains = {port: [kind(c, port) for c in listener_named(proxy, snapshot, port).filter_chains] for port in PORTS}
    assert chains == {9080: ["mtls"], 9090: ["plaintext"], 5432: ["mtls", "tls-passthrough", "plaintext"]}


def test_trust_domain_shapes_inbound_and_outbound_identities(make_meta: MakeMeta) -> None:
    snapshot = snapshot_of(*mesh(make_meta), trust_domain="corp.example")
    proxy = proxy_of(snapshot, "reviews-v1", "127.0.0.21")
    (chain, _) = listener_named(proxy, snapshot, 9080).filter_chains
    assert sans(unpack(DownstreamTlsContext(), chain.transport_socket.typed_config)) == [
        (URI, "spiffe://corp.example/")
    ]
    istio_match = outbound(snapshot)[f"outbound|9080|v1|{REVIEWS}"].transport_socket_matches[0]
    assert sans(upstream_tls(istio_match.transport_socket)) == [
        (URI, "spiffe://corp.example/ns/default/sa/legacy"),
        (URI, "spiffe://corp.example/ns/default/sa/reviews-v1"),
    ]


def test_strict_without_sds_stays_plaintext_and_warns_once(make_meta: MakeMeta) -> None:
    snapshot = snapshot_of(*mesh(make_meta, peer_auth(make_meta, "STRICT")))
    proxy = proxy_of(snapshot, "reviews-v2", "127.0.0.22", sds=False)
    with structlog.testing.capture_logs() as logs:
        first = listeners.build_listeners(proxy, snapshot)
        assert listeners.build_listeners(proxy, snapshot) == first
    warned = [e for e in logs if e["event"] == "strict_mtls_not_enforced"]
    assert sorted(e["port"] for e in warned) == [5432, 9080, 9090]  # once per port, not per build
    assert all(not chain.HasField("transport_socket") for x in first for chain in x.filter_chains)


# ------------------------------------------------------------------------------------------------ SDS and scopes


def walk(message: Message) -> Iterator[Message]:
    """Every message under ``message``, unpacking Any fields of Envoy types."""
    yield message
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        for item in value if field.is_repeated else [value]:
            if isinstance(item, AnyProto):
                for cls in (DownstreamTlsContext, UpstreamTlsContext, HttpConnectionManager):
                    if item.Is(cls.DESCRIPTOR):
                        yield from walk(unpack(cls(), item))
            elif isinstance(item, Message):
                yield from walk(item)


def test_every_sds_reference_is_the_same_token_free_config(make_meta: MakeMeta) -> None:
    snapshot = snapshot_of(*mesh(make_meta, peer_auth(make_meta, "PERMISSIVE")))
    proxy = proxy_of(snapshot, "reviews-v1", "127.0.0.21")
    resources = [*outbound(snapshot).values(), *listeners.build_listeners(proxy, snapshot)]
    found = [m for r in resources for m in walk(r) if isinstance(m, SdsSecretConfig)]
    by_name: dict[str, set[bytes]] = {}
    for config in found:
        by_name.setdefault(config.name, set()).add(config.SerializeToString(deterministic=True))
    assert {name: len(variants) for name, variants in by_name.items()} == {"default": 1, "ROOTCA": 1}
    assert len(found) > 10
    source = found[0].sds_config.api_config_source
    assert source.api_type == source.GRPC and source.transport_api_version == 2  # V3
    (grpc,) = source.grpc_services
    assert grpc.envoy_grpc.cluster_name == "sds-grpc" and not grpc.initial_metadata
    assert found[0].sds_config.resource_api_version == 2


def test_scopes_split_proxies_with_and_without_sds(make_meta: MakeMeta) -> None:
    snapshot = snapshot_of(*mesh(make_meta))
    with_sds, without = proxy_of(snapshot, "reviews-v1", "127.0.0.21"), proxy_of(snapshot, "x", "127.0.0.99", sds=False)
    assert (clusters.cluster_scopes(with_sds), clusters.cluster_scopes(without)) == (
        [("outbound", "sds", "default")],
        [("outbound", "default")],
    )
    assert (endpoints.endpoint_scopes(with_sds), endpoints.endpoint_scopes(without)) == (
        [("eds", "sds", "default")],
        [("eds", "default")],
    )
    with pytest.raises(ValueError, match="unknown scope"):
        endpoints.build_scope_load_assignments(("eds", "mtls", "default"), snapshot)
    for type_url in PUSH_ORDER:  # Envoy's types; the agent's name table does not depend on mTLS
        assert ("PeerAuthentication" in GENERATORS[type_url].affected_by) is (type_url != ROUTE_TYPE), type_url
    assert "PeerAuthentication" not in GENERATORS[NAME_TABLE_TYPE].affected_by


def all_resources(proxy: Proxy, snapshot: MeshSnapshot) -> list[bytes]:
    return [
        message.SerializeToString(deterministic=True)
        for generator in GENERATORS.values()
        for message in [
            *(m for scope in generator.scopes(proxy) for m in generator.build_scope(scope, snapshot)),
            *generator.build_proxy(proxy, snapshot),
        ]
    ]


@pytest.mark.parametrize("mode", ["STRICT", "PERMISSIVE", "DISABLE"])
def test_proxies_without_sds_get_the_config_they_had_before_mtls(make_meta: MakeMeta, mode: MtlsMode) -> None:
    """Byte for byte what the same mesh gives without any PeerAuthentication (the pre-mTLS code path, unchanged:
    checked once against the previous release's generators on the demo mesh, same hashes)."""
    plain = snapshot_of(*mesh(make_meta))
    with_policies = snapshot_of(
        *mesh(
            make_meta,
            peer_auth(make_meta, mode),
            peer_auth(make_meta, "STRICT", namespace="default", ports={19080: "DISABLE"}),
        )
    )
    for workload, address in (("reviews-v1", "127.0.0.21"), ("db-1", "127.0.0.31"), ("client", "127.0.0.99")):
        before, after = (
            proxy_of(plain, workload, address, sds=False),
            proxy_of(with_policies, workload, address, sds=False),
        )
        assert all_resources(after, with_policies) == all_resources(before, plain), workload
        assert b"sds-grpc" not in b"".join(all_resources(after, with_policies))


# ------------------------------------------------------------------------------------------------ real Envoy


def test_envoy_accepts_a_whole_mtls_config_with_the_bootstrap_sds_cluster(tmp_path: Path, make_meta: MakeMeta) -> None:
    pki = write_test_pki(tmp_path)
    api_rule = DestinationRule(
        meta=make_meta("DestinationRule", "api"),
        host=API,
        traffic_policy=dr_tls(
            mode="MUTUAL",
            client_certificate=str(pki["cert"]),
            private_key=str(pki["key"]),
            ca_certificates=str(pki["root"]),
        ),
    )
    db_rule = DestinationRule(meta=make_meta("DestinationRule", "db"), host=DB, traffic_policy=dr_tls(mode="SIMPLE"))
    reviews_policy = TrafficPolicy(
        port_level_settings=(PortTrafficPolicy(port=9090, tls=ClientTLSSettings(mode="ISTIO_MUTUAL")),)
    )
    per_port = peer_auth(make_meta, "STRICT", namespace="default", ports={19080: "DISABLE", 15432: "PERMISSIVE"})
    snapshot = snapshot_of(*mesh(make_meta, api_rule, db_rule, per_port, rule_policy=reviews_policy))
    proxy = proxy_of(snapshot, "reviews-v1", "127.0.0.21")
    built_clusters = [*outbound(snapshot).values(), *clusters.build_inbound_clusters(proxy, snapshot)]
    assignments = endpoints.build_scope_load_assignments(
        endpoints.endpoint_scope(sds=True, namespace="default"), snapshot
    )
    built_listeners = listeners.build_listeners(proxy, snapshot)
    tables = generated_type(ROUTE_TYPE, proxy, snapshot)
    check_resources(clusters=built_clusters, load_assignments=assignments, listeners=built_listeners, routes=tables)
    # STRICT (9090) and DISABLE (9080) ports, PERMISSIVE TCP (5432: mTLS by ALPN, TLS passthrough, plaintext)
    inbound = {lis.name: lis for lis in built_listeners}["virtualInbound"]
    assert Counter(c.filter_chain_match.destination_port.value for c in inbound.filter_chains) == {
        15006: 1, 9080: 1, 19080: 1, 9090: 1, 19090: 1, 5432: 3, 15432: 3, 0: 1
    }  # fmt: skip
    sds_cluster = build_sds_cluster(
        HostPort(host="127.0.0.1", port=15012),
        token="t0k3n",
        citadel_trust=write_citadel_trust(tmp_path / "citadel-trust.json", pki["root"]),
    )
    envoy_validate(
        tmp_path,
        clusters=[*built_clusters, sds_cluster],
        listeners=built_listeners,
        routes=tables,
        load_assignments=assignments,
    )


# ------------------------------------------------------------------------------------------------ through ADS


async def test_node_metadata_from_envoy_selects_the_mtls_config(make_meta: MakeMeta) -> None:
    """Pilot reads MESHPLANE_SDS from the node metadata of the stream's first request: same workload, two streams."""
    server = DiscoveryServer(debounce=0.01, debounce_max=0.1)
    server.update_config({r.meta.key: r for r in mesh(make_meta, peer_auth(make_meta, "STRICT"))}, 1)
    await server.start("127.0.0.1:0")
    try:
        await wait_until(lambda: server.ready)
        chains: dict[bool, list[str]] = {}
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            for sds in (True, False):
                stream = AdsStream(channel)
                request = DiscoveryRequest(type_url=LISTENER_TYPE)
                request.node.id = "sidecar~127.0.0.21~reviews-v1.default~default.svc.cluster.local"
                request.node.metadata.update({"NAMESPACE": "default", **({"MESHPLANE_SDS": "true"} if sds else {})})
                await stream.send(request)
                response = await stream.recv()
                by_name = {x.name: x for x in (unpack(Listener(), r) for r in response.resources)}
                inbound = by_name["virtualInbound"].filter_chains
                chains[sds] = [kind(c, 9080) for c in inbound if c.filter_chain_match.destination_port.value == 9080]
                await stream.close()
    finally:
        await server.stop(grace=0)
    assert chains == {True: ["mtls"], False: ["plaintext"]}
