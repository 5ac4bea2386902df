"""EnvoyFilter patches applied to what a sidecar is served (``pilot.generate.envoy_filter_*``): each applyTo and
operation on meshplane's own listener, chain, filter, route and cluster names, asserted field by field; which
proxies a filter applies to and in which order; shared bytes keyed by the patches; Istio's docs examples through
``envoy --mode validate``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_components_pb2 import VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.http.lua.v3.lua_pb2 import Lua
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)

from pilot.config.parse import parse_config_text
from pilot.config.types import EnvoyFilter
from pilot.generate.envoy_filter_listeners import patch_listeners
from pilot.generate.envoy_filter_routes import patch_route_configurations
from pilot.generate.registry import GENERATORS
from pilot.model import build_snapshot
from pilot.xds.cache import ResourceCache
from tests import xdstest
from tests.envoy_filter_builders import RATINGS, envoy_filter, mesh, reviews_sidecar, served
from tests.sidecar_builders import unpack
from tests.source_builders import validate_generated
from xdscore.types import CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE

DOCS = Path(__file__).resolve().parent.parent / "e2e" / "istio_docs" / "envoyfilter"
HCM = "envoy.filters.network.http_connection_manager"
LUA_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def patch(apply_to: str, operation: str, value: Any = None, **match: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"operation": operation}
    if value is not None:
        body["value"] = value
    return {"applyTo": apply_to, "match": match, "patch": body}


def patched(*patches: dict[str, Any], **spec: Any) -> Any:
    snap = mesh(envoy_filter({"configPatches": list(patches), **spec}))
    return snap, reviews_sidecar(snap)


def hcm_of(listener: Listener, chain_name: str) -> HttpConnectionManager:
    [chain] = [c for c in listener.filter_chains if c.name == chain_name]
    [network] = [f for f in chain.filters if f.name == HCM]
    return unpack(HttpConnectionManager(), network.typed_config)


def http_filter_names(listener: Listener, chain_name: str) -> list[str]:
    return [f.name for f in hcm_of(listener, chain_name).http_filters]


def docs_filter(name: str) -> EnvoyFilter:
    """An Istio docs example as written, moved to namespace default (the builders' mesh)."""
    parsed = parse_config_text((DOCS / f"{name}.yaml").read_text(), f"{name}.yaml")
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    [resource] = parsed.resources
    assert isinstance(resource, EnvoyFilter)
    key = dataclasses.replace(resource.meta.key, namespace="default")
    return dataclasses.replace(resource, meta=dataclasses.replace(resource.meta, key=key))


# ------------------------------------------------------------------------------------------ Istio's docs example


def test_docs_lua_filter_goes_before_the_router_on_inbound_port_8080_and_its_cluster_is_added(tmp_path: Path) -> None:
    snap = mesh(docs_filter("reviews-lua"))
    proxy = reviews_sidecar(snap)
    resources = validate_generated(tmp_path, proxy, snap)  # envoy --mode validate accepts the patched config
    listeners = {m.name: m for m in resources[LISTENER_TYPE]}
    inbound = listeners["virtualInbound"]
    plain = http_filter_names(inbound, "inbound_0.0.0.0_8080_plaintext")
    assert plain[-2:] == ["envoy.filters.http.lua", "envoy.filters.http.router"]
    [lua] = [f for f in hcm_of(inbound, "inbound_0.0.0.0_8080_mtls").http_filters if f.name == "envoy.filters.http.lua"]
    assert lua.typed_config.type_url == LUA_TYPE
    assert "lua_cluster" in unpack(Lua(), lua.typed_config).default_source_code.inline_string or "lua_cluster" in (
        unpack(Lua(), lua.typed_config).inline_code
    )
    # port 9080's chains (the service port) and the outbound side are left alone
    assert "envoy.filters.http.lua" not in http_filter_names(inbound, "inbound_0.0.0.0_9080_plaintext")
    assert "envoy.filters.http.lua" not in [f.name for f in hcm_of(listeners["0.0.0.0_9080"], "").http_filters]
    clusters = {m.name: m for m in resources[CLUSTER_TYPE]}
    lua_cluster = clusters["lua_cluster"]
    assert lua_cluster.type == Cluster.DiscoveryType.STRICT_DNS
    assert lua_cluster.connect_timeout.ToMilliseconds() == 500
    address = lua_cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (address.address, address.port_value) == ("internal.org.net", 8888)


def test_docs_lua_filter_applies_only_to_the_workloads_it_selects() -> None:
    snap = mesh(dataclasses.replace(docs_filter("reviews-lua"), workload_selector={"app": "ratings"}))
    proxy = reviews_sidecar(snap)
    assert proxy.envoy_filter_patches == ()
    assert "lua_cluster" not in served(CLUSTER_TYPE, proxy, snap)


# ------------------------------------------------------------------------------------------------------ CLUSTER


def test_cluster_merge_by_service_and_port_sets_its_connect_timeout_and_circuit_breaker() -> None:
    value = {"connect_timeout": "7s", "circuit_breakers": {"thresholds": [{"max_connections": 11}]}}
    snap, proxy = patched(patch("CLUSTER", "MERGE", value, cluster={"service": RATINGS, "portNumber": 9080}))
    clusters = served(CLUSTER_TYPE, proxy, snap)
    ratings = clusters[f"outbound|9080||{RATINGS}"]
    assert ratings.connect_timeout.seconds == 7
    assert [t.max_connections.value for t in ratings.circuit_breakers.thresholds][-1] == 11
    assert ratings.type == Cluster.DiscoveryType.EDS  # the rest is as generated
    untouched = served(CLUSTER_TYPE, reviews_sidecar(mesh()), mesh())
    assert (
        clusters["outbound|9080||reviews.default.svc.cluster.local"]
        == untouched["outbound|9080||reviews.default.svc.cluster.local"]
    )


def test_cluster_match_by_name_subset_and_inbound_service() -> None:
    snap, proxy = patched(
        patch("CLUSTER", "MERGE", {"connect_timeout": "3s"}, cluster={"name": "PassthroughCluster"}),
        patch("CLUSTER", "MERGE", {"connect_timeout": "4s"}, cluster={"subset": "v9"}),
        patch(
            "CLUSTER",
            "MERGE",
            {"connect_timeout": "5s"},
            context="SIDECAR_INBOUND",
            cluster={"service": "reviews.default.svc.cluster.local"},
        ),
    )
    clusters = served(CLUSTER_TYPE, proxy, snap)
    assert clusters["PassthroughCluster"].connect_timeout.seconds == 3
    assert clusters["inbound|9080||"].connect_timeout.seconds == 5
    assert clusters[f"outbound|9080||{RATINGS}"].connect_timeout.seconds != 4


def test_cluster_remove_and_add() -> None:
    added = {"name": "extra", "type": "STATIC", "connect_timeout": "1s"}
    snap, proxy = patched(
        patch("CLUSTER", "REMOVE", cluster={"service": "db.example.com"}),
        patch("CLUSTER", "ADD", added, context="SIDECAR_OUTBOUND"),
    )
    clusters = served(CLUSTER_TYPE, proxy, snap)
    assert "outbound|5432||db.example.com" not in clusters
    assert clusters["extra"].type == Cluster.DiscoveryType.STATIC


# ---------------------------------------------------------------------------------------- LISTENER, FILTER_CHAIN


def test_listener_merge_remove_and_add_by_port_and_name() -> None:
    added = {"name": "extra", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 7070}}}
    snap, proxy = patched(
        patch("LISTENER", "MERGE", {"per_connection_buffer_limit_bytes": 4096}, listener={"portNumber": 9080}),
        patch("LISTENER", "REMOVE", listener={"name": "0.0.0.0_5432"}),
        patch("LISTENER", "ADD", added, context="SIDECAR_OUTBOUND"),
    )
    listeners = served(LISTENER_TYPE, proxy, snap)
    assert listeners["0.0.0.0_9080"].per_connection_buffer_limit_bytes.value == 4096
    assert not listeners["virtualInbound"].HasField("per_connection_buffer_limit_bytes")
    assert "0.0.0.0_5432" not in listeners
    assert listeners["extra"].address.socket_address.port_value == 7070


def test_filter_chain_merge_remove_and_add_on_virtual_inbound_by_destination_port() -> None:
    snap, proxy = patched(
        patch(
            "FILTER_CHAIN",
            "MERGE",
            {"transport_socket_connect_timeout": "2s"},
            context="SIDECAR_INBOUND",
            listener={"portNumber": 8080, "filterChain": {"transportProtocol": "raw_buffer"}},
        ),
        patch("FILTER_CHAIN", "REMOVE", listener={"filterChain": {"name": "InboundPassthroughFilterChain_mtls"}}),
        patch("FILTER_CHAIN", "ADD", {"name": "added"}, listener={"name": "virtualInbound"}),
    )
    inbound = served(LISTENER_TYPE, proxy, snap)["virtualInbound"]
    chains = {c.name: c for c in inbound.filter_chains}
    assert chains["inbound_0.0.0.0_8080_plaintext"].transport_socket_connect_timeout.seconds == 2
    assert not chains["inbound_0.0.0.0_8080_mtls"].HasField("transport_socket_connect_timeout")
    assert not chains["inbound_0.0.0.0_9080_plaintext"].HasField("transport_socket_connect_timeout")
    assert "InboundPassthroughFilterChain_mtls" not in chains
    assert inbound.filter_chains[-1].name == "added"


def test_application_protocols_and_destination_port_match_chains() -> None:
    match = {"filterChain": {"applicationProtocols": "istio-h2,istio", "destinationPort": 8080}}
    snap, proxy = patched(patch("FILTER_CHAIN", "MERGE", {"transport_socket_connect_timeout": "2s"}, listener=match))
    inbound = served(LISTENER_TYPE, proxy, snap)["virtualInbound"]
    patched_chains = [c.name for c in inbound.filter_chains if c.HasField("transport_socket_connect_timeout")]
    assert patched_chains == ["inbound_0.0.0.0_8080_mtls"]


def test_docs_hcm_tweaks_merge_the_gateway_hcm_of_its_sni_chain(tmp_path: Path) -> None:
    rule = docs_filter("hcm-tweaks")
    hcm = HttpConnectionManager(stat_prefix="gw", rds={"route_config_name": "https.443.https.gw.istio-system"})
    hcm.rds.config_source.ads.SetInParent()
    listener = Listener(name="0.0.0.0_8443", address={"socket_address": {"address": "0.0.0.0", "port_value": 8443}})
    for sni in ("app.example.com", "other.example.com"):
        chain = listener.filter_chains.add(name=sni)
        chain.filter_chain_match.server_names.append(sni)
        chain.filters.add(name=HCM).typed_config.Pack(hcm)
    [out] = patch_listeners([listener], rule.config_patches, router=True, add=True)
    tweaked, other = (unpack(HttpConnectionManager(), c.filters[0].typed_config) for c in out.filter_chains)
    assert tweaked.xff_num_trusted_hops == 5
    assert tweaked.common_http_protocol_options.idle_timeout.seconds == 30
    assert tweaked.rds.route_config_name == "https.443.https.gw.istio-system"
    assert other == hcm
    assert patch_listeners([listener], rule.config_patches, router=False, add=True) == [listener]  # GATEWAY only
    table = RouteConfiguration(name="https.443.https.gw.istio-system")
    xdstest.envoy_validate(tmp_path, listeners=[out], routes=[table])


# -------------------------------------------------------------------------------------------- NETWORK_FILTER


def test_network_filter_merge_of_the_hcm_typed_config_keeps_its_routes() -> None:
    value = {"typed_config": {"@type": HCM_TYPE, "xff_num_trusted_hops": 5}}
    snap, proxy = patched(
        patch("NETWORK_FILTER", "MERGE", value, listener={"portNumber": 9080, "filterChain": {"filter": {"name": HCM}}})
    )
    hcm = hcm_of(served(LISTENER_TYPE, proxy, snap)["0.0.0.0_9080"], "")
    assert hcm.xff_num_trusted_hops == 5
    assert hcm.rds.route_config_name == "9080"  # merged into, not replaced
    assert hcm.http_filters[-1].name == "envoy.filters.http.router"


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("INSERT_BEFORE", ["x.first", "envoy.filters.network.tcp_proxy"]),
        ("INSERT_AFTER", ["envoy.filters.network.tcp_proxy", "x.first"]),
        ("INSERT_FIRST", ["x.first", "envoy.filters.network.tcp_proxy"]),
        ("ADD", ["envoy.filters.network.tcp_proxy", "x.first"]),
        ("REPLACE", ["x.first"]),
        ("REMOVE", []),
    ],
    ids=["insert-before", "insert-after", "insert-first", "add", "replace", "remove"],
)
def test_network_filter_operations_relative_to_tcp_proxy(operation: str, expected: list[str]) -> None:
    value = None if operation == "REMOVE" else {"name": "x.first"}
    match = {"portNumber": 5432, "filterChain": {"filter": {"name": "envoy.tcp_proxy"}}}  # Istio's old name matches
    snap, proxy = patched(patch("NETWORK_FILTER", operation, value, context="SIDECAR_OUTBOUND", listener=match))
    [chain] = served(LISTENER_TYPE, proxy, snap)["0.0.0.0_5432"].filter_chains
    assert [f.name for f in chain.filters] == expected


# ------------------------------------------------------------------------------------------------ HTTP_FILTER


ROUTER = "envoy.filters.http.router"


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("INSERT_BEFORE", lambda before: [*before, "x.lua", ROUTER]),
        ("INSERT_AFTER", lambda before: [*before, ROUTER, "x.lua"]),
        ("INSERT_FIRST", lambda before: ["x.lua", *before, ROUTER]),
        ("ADD", lambda before: [*before, ROUTER, "x.lua"]),
        ("REPLACE", lambda before: [*before, "x.lua"]),
        ("REMOVE", lambda before: before),
    ],
    ids=["insert-before", "insert-after", "insert-first", "add", "replace", "remove"],
)
def test_http_filter_operations_relative_to_the_router(operation: str, expected: Any) -> None:
    value = None if operation == "REMOVE" else {"name": "x.lua", "typed_config": {"@type": LUA_TYPE}}
    match = {"portNumber": 9080, "filterChain": {"filter": {"name": HCM, "subFilter": {"name": "envoy.router"}}}}
    snap, proxy = patched(patch("HTTP_FILTER", operation, value, context="SIDECAR_OUTBOUND", listener=match))
    unpatched = http_filter_names(served(LISTENER_TYPE, reviews_sidecar(mesh()), mesh())["0.0.0.0_9080"], "")
    assert unpatched[-1] == ROUTER
    names = http_filter_names(served(LISTENER_TYPE, proxy, snap)["0.0.0.0_9080"], "")
    assert names == expected(unpatched[:-1])


def test_http_filter_merge_merges_the_typed_config_of_the_same_type() -> None:
    match = {"filterChain": {"filter": {"name": HCM, "subFilter": {"name": "x.lua"}}}}
    snap, proxy = patched(
        patch(
            "HTTP_FILTER", "INSERT_FIRST", {"name": "x.lua", "typed_config": {"@type": LUA_TYPE, "stat_prefix": "a"}}
        ),
        patch("HTTP_FILTER", "MERGE", {"typed_config": {"@type": LUA_TYPE, "inline_code": "-- hi"}}, listener=match),
    )
    [lua] = [
        f for f in hcm_of(served(LISTENER_TYPE, proxy, snap)["0.0.0.0_9080"], "").http_filters if f.name == "x.lua"
    ]
    config = unpack(Lua(), lua.typed_config)
    assert (config.stat_prefix, config.inline_code) == ("a", "-- hi")


# ------------------------------------------------------------------------ ROUTE_CONFIGURATION, VIRTUAL_HOST, HTTP_ROUTE


def test_route_configuration_merge_by_port_and_name() -> None:
    snap, proxy = patched(
        patch(
            "ROUTE_CONFIGURATION",
            "MERGE",
            {"max_direct_response_body_size_bytes": 1024},
            routeConfiguration={"portNumber": 9080},
        ),
        patch(
            "ROUTE_CONFIGURATION",
            "MERGE",
            {"most_specific_header_mutations_wins": True},
            routeConfiguration={"name": "inbound|9080||"},
        ),
    )
    tables = served(ROUTE_TYPE, proxy, snap)
    assert tables["9080"].max_direct_response_body_size_bytes.value == 1024
    assert tables["inbound|9080||"].max_direct_response_body_size_bytes.value == 1024  # port 9080 too
    assert tables["inbound|9080||"].most_specific_header_mutations_wins
    assert not tables["9080"].most_specific_header_mutations_wins


def test_virtual_host_merge_remove_and_add() -> None:
    ratings_vhost = f"{RATINGS}:9080"
    snap, proxy = patched(
        patch(
            "VIRTUAL_HOST",
            "MERGE",
            {"include_request_attempt_count": True},
            routeConfiguration={"vhost": {"name": ratings_vhost}},
        ),
        patch(
            "VIRTUAL_HOST",
            "REMOVE",
            context="SIDECAR_OUTBOUND",
            routeConfiguration={"vhost": {"domainName": "reviews"}},
        ),
        patch(
            "VIRTUAL_HOST",
            "ADD",
            {"name": "added", "domains": ["added.example.com"]},
            routeConfiguration={"portNumber": 9080},
        ),
    )
    table = served(ROUTE_TYPE, proxy, snap)["9080"]
    vhosts = {v.name: v for v in table.virtual_hosts}
    assert vhosts[ratings_vhost].include_request_attempt_count
    assert not any("reviews" in v.domains for v in table.virtual_hosts)
    assert table.virtual_hosts[-1].name == "added"
    assert list(served(ROUTE_TYPE, proxy, snap)["inbound|9080||"].virtual_hosts[-1].domains) == ["added.example.com"]


def test_http_route_merge_insert_and_remove() -> None:
    direct = {"name": "teapot", "match": {"prefix": "/teapot"}, "direct_response": {"status": 418}}
    snap, proxy = patched(
        patch(
            "HTTP_ROUTE",
            "MERGE",
            {"route": {"timeout": "9s"}},
            context="SIDECAR_INBOUND",
            routeConfiguration={"vhost": {"route": {"action": "ROUTE"}}},
        ),
        patch("HTTP_ROUTE", "INSERT_FIRST", direct, context="SIDECAR_INBOUND"),
        patch(
            "HTTP_ROUTE",
            "INSERT_AFTER",
            {**direct, "name": "after"},
            context="SIDECAR_INBOUND",
            routeConfiguration={"vhost": {"route": {"name": "teapot"}}},
        ),
        patch(
            "HTTP_ROUTE",
            "REMOVE",
            context="SIDECAR_OUTBOUND",
            routeConfiguration={"vhost": {"name": f"{RATINGS}:9080", "route": {"name": "default"}}},
        ),
    )
    tables = served(ROUTE_TYPE, proxy, snap)
    [vhost] = tables["inbound|9080||"].virtual_hosts
    assert [r.name for r in vhost.routes] == ["teapot", "after", "default"]
    assert vhost.routes[0].direct_response.status == 418
    assert vhost.routes[2].route.timeout.seconds == 9
    [ratings] = [v for v in tables["9080"].virtual_hosts if v.name == f"{RATINGS}:9080"]
    assert [r.name for r in ratings.routes] == []


def test_gateway_route_tables_match_on_port_name_and_gateway() -> None:
    tables = [
        RouteConfiguration(name="https.443.https.gw.istio-system", virtual_hosts=[VirtualHost(name="a")]),
        RouteConfiguration(name="http.80", virtual_hosts=[VirtualHost(name="a")]),
    ]
    rule = envoy_filter(
        {
            "configPatches": [
                patch(
                    "ROUTE_CONFIGURATION",
                    "MERGE",
                    {"ignore_port_in_host_matching": True},
                    context="GATEWAY",
                    routeConfiguration={"portNumber": 443, "portName": "https", "gateway": "istio-system/gw"},
                )
            ]
        }
    )
    out = patch_route_configurations(tables, rule.config_patches, router=True)
    assert [t.ignore_port_in_host_matching for t in out] == [True, False]
    assert patch_route_configurations(tables, rule.config_patches, router=False) == tables  # not a gateway


# ------------------------------------------------------------------------------- selection, order and sharing


def test_root_namespace_filters_apply_first_then_by_priority() -> None:
    def inserting(name: str) -> dict[str, Any]:
        return patch("HTTP_FILTER", "INSERT_FIRST", {"name": name}, listener={"portNumber": 9080})

    snap = mesh(
        envoy_filter({"configPatches": [inserting("ns")]}, name="a"),
        envoy_filter({"configPatches": [inserting("root")]}, name="z", namespace="istio-system"),
        envoy_filter({"configPatches": [inserting("late")], "priority": 10}, name="b"),
        envoy_filter({"configPatches": [inserting("early")], "priority": -10}, name="c"),
        envoy_filter({"configPatches": [inserting("other")]}, name="d", namespace="other"),
        envoy_filter(
            {"configPatches": [inserting("root-selected")], "workloadSelector": {"labels": {"app": "reviews"}}},
            name="y",
            namespace="istio-system",
        ),
        envoy_filter(
            {"configPatches": [inserting("selected")], "workloadSelector": {"labels": {"app": "nope"}}}, name="e"
        ),
    )
    names = http_filter_names(served(LISTENER_TYPE, reviews_sidecar(snap), snap)["0.0.0.0_9080"], "")
    # each INSERT_FIRST goes before the ones applied before it: the reverse of the order of application
    assert names[:5] == ["late", "ns", "root", "root-selected", "early"]  # root y, then z, by name
    assert "other" not in names and "selected" not in names


def test_proxy_version_and_metadata_decide_per_proxy() -> None:
    snap = mesh(
        envoy_filter(
            {
                "configPatches": [
                    patch(
                        "CLUSTER",
                        "REMOVE",
                        proxy={"proxyVersion": r"^1\.24", "metadata": {"TIER": "a"}},
                        cluster={"name": "BlackHoleCluster"},
                    )
                ]
            }
        )
    )
    assert "BlackHoleCluster" not in served(CLUSTER_TYPE, reviews_sidecar(snap, {"TIER": "a"}), snap)
    assert "BlackHoleCluster" in served(CLUSTER_TYPE, reviews_sidecar(snap, {"TIER": "b"}), snap)
    assert "BlackHoleCluster" in served(
        CLUSTER_TYPE, reviews_sidecar(snap, {"TIER": "a", "ISTIO_VERSION": "1.25.0"}), snap
    )


def test_proxies_share_scopes_only_when_the_same_patches_apply() -> None:
    snap = mesh(
        envoy_filter(
            {"configPatches": [patch("CLUSTER", "MERGE", {"connect_timeout": "7s"}, proxy={"metadata": {"TIER": "a"}})]}
        )
    )
    generator = GENERATORS[CLUSTER_TYPE]
    plain, tier_a = reviews_sidecar(snap), reviews_sidecar(snap, {"TIER": "a"})
    assert generator.scopes(plain) == GENERATORS[CLUSTER_TYPE].scopes(reviews_sidecar(mesh()))
    assert generator.scopes(tier_a) != generator.scopes(plain)
    assert generator.scopes(tier_a) == generator.scopes(reviews_sidecar(snap, {"TIER": "a", "X": "y"}))
    [scope] = [s for s in generator.scopes(tier_a)]
    assert all(c.connect_timeout.seconds == 7 for c in generator.build_scope(scope, snap))


def test_the_cache_serves_proxies_with_the_same_patches_the_same_bytes() -> None:
    rule = {"configPatches": [patch("CLUSTER", "MERGE", {"connect_timeout": "7s"}, proxy={"metadata": {"TIER": "a"}})]}
    snap = mesh(envoy_filter(rule))
    cache = ResourceCache(snap, GENERATORS)
    nodes = [reviews_sidecar(snap, metadata).node for metadata in ({"TIER": "a"}, {"TIER": "a", "X": "y"}, {})]
    first, second, plain = (cache.view(CLUSTER_TYPE, node) for node in nodes)
    assert first.groups[0] is second.groups[0]  # one patched group, serialized once
    assert plain.groups[0] is not first.groups[0]
    patched_bytes = first.groups[0].resources[f"outbound|9080||{RATINGS}"]
    assert patched_bytes != plain.groups[0].resources[f"outbound|9080||{RATINGS}"]


def test_an_envoy_filter_change_rebuilds_the_patched_types_only() -> None:
    for type_url in (LISTENER_TYPE, ROUTE_TYPE, CLUSTER_TYPE):
        assert "EnvoyFilter" in GENERATORS[type_url].affected_by
    snap = build_snapshot({}, version=1)
    assert snap.envoy_filters.by_namespace == {}
