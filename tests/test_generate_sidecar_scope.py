"""A proxy gets only what its Sidecar allows (Istio's SidecarScope): clusters, endpoints, route tables' virtual hosts,
outbound listeners and the agent's name table; the catch-all per the Sidecar's outboundTrafficPolicy; a selecting
Sidecar beats the namespace's, which beats the root namespace's; proxies under one Sidecar share their scopes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy

from meshplane import names
from pilot.analyze import analyze_snapshot
from pilot.config.mesh_extension_providers import ExtAuthzGrpcProvider, ExtAuthzHttpProvider
from pilot.config.parse import parse_config_text
from pilot.config.types import ConfigKey
from pilot.generate import clusters, endpoints, listeners, name_table, port_routes
from pilot.generate.registry import GENERATORS
from pilot.model import MeshSnapshot, Proxy, build_snapshot, parse_node_id, resolve_proxy
from pilot.model.mesh_settings import DEFAULT_MESH_SETTINGS, MESH_CONFIG_KIND, MeshSettings
from pilot.model.sidecar_index import SIDECAR_SCOPE_KIND
from pilot.xds.cache import ResourceCache
from xdscore.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, NAME_TABLE_TYPE, PROXY_CONFIG_TYPE, ROUTE_TYPE

SUFFIX = "svc.cluster.local"
_API_VERSIONS = {"RequestAuthentication": "security.istio.io/v1"}


def _service(name: str, namespace: str, port: int = 9080, protocol: str = "HTTP") -> dict[str, Any]:
    return {
        "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "hosts": [f"{name}.{namespace}.{SUFFIX}"],
            "addresses": [f"10.0.{len(namespace)}.{port % 250}"],
            "ports": [{"number": port, "name": "p", "protocol": protocol}],
            "location": "MESH_INTERNAL",
            "resolution": "STATIC",
            "endpoints": [{"address": f"127.1.{len(namespace)}.{port % 250}"}],
        },
    }


def _workload(name: str, namespace: str, address: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "kind": "WorkloadEntry",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"address": address, "labels": dict(labels)},
    }


def _sidecar(name: str, namespace: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": "Sidecar", "metadata": {"name": name, "namespace": namespace}, "spec": dict(spec)}


BASE = [
    _service("web", "a"),
    _service("db", "a", 3306, "TCP"),
    _service("api", "b"),
    _service("other", "c", 8080),
    _service("telemetry", "istio-system", 15010, "GRPC"),
    _workload("client", "a", "127.0.0.10", {"app": "client"}),
    _workload("special", "a", "127.0.0.11", {"app": "special"}),
    _workload("bclient", "b", "127.0.0.20", {"app": "bclient"}),
]
ISOLATE_A = _sidecar("default", "a", {"egress": [{"hosts": ["./*", "istio-system/*"]}]})


def _snapshot(
    *documents: Mapping[str, Any], previous: MeshSnapshot | None = None, mesh: MeshSettings = DEFAULT_MESH_SETTINGS
) -> MeshSnapshot:
    text = "\n---\n".join(
        json.dumps({"apiVersion": _API_VERSIONS.get(d["kind"], "networking.istio.io/v1"), **d}) for d in documents
    )
    parsed = parse_config_text(text, "mesh.yaml")
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    version = previous.version + 1 if previous is not None else 1
    return build_snapshot({r.meta.key: r for r in parsed.resources}, version=version, previous=previous, mesh=mesh)


def _proxy(snapshot: MeshSnapshot, workload: str, namespace: str, ip: str) -> Proxy:
    node = parse_node_id(f"sidecar~{ip}~{workload}.{namespace}~{namespace}.{SUFFIX}")
    return resolve_proxy(node, snapshot)


def _cluster_names(proxy: Proxy, snapshot: MeshSnapshot) -> list[str]:
    (scope,) = clusters.cluster_scopes(proxy)
    return [c.name for c in clusters.build_scope_clusters(scope, snapshot)]


def _outbound(host: str, port: int) -> str:
    return names.outbound_cluster_name(port, "", host)


WEB, DB, API = f"web.a.{SUFFIX}", f"db.a.{SUFFIX}", f"api.b.{SUFFIX}"
OTHER, TELEMETRY = f"other.c.{SUFFIX}", f"telemetry.istio-system.{SUFFIX}"
FIXED = ["BlackHoleCluster", "PassthroughCluster", "InboundPassthroughCluster"]


def test_egress_own_namespace_and_istio_system_gives_exactly_those_clusters() -> None:
    snapshot = _snapshot(*BASE, ISOLATE_A)
    proxy = _proxy(snapshot, "client", "a", "127.0.0.10")
    assert proxy.sidecar == ConfigKey(kind="Sidecar", namespace="a", name="default")
    assert _cluster_names(proxy, snapshot) == [  # host order: a's db and web, istio-system's telemetry
        _outbound(DB, 3306),
        _outbound(TELEMETRY, 15010),
        _outbound(WEB, 9080),
        *FIXED,
    ]
    (scope,) = endpoints.endpoint_scopes(proxy)
    assignments = endpoints.build_scope_load_assignments(scope, snapshot)
    assert [a.cluster_name for a in assignments] == [
        _outbound(DB, 3306),
        _outbound(TELEMETRY, 15010),
        _outbound(WEB, 9080),
    ]
    (web,) = [a for a in assignments if a.cluster_name == _outbound(WEB, 9080)]
    assert [e.endpoint.address.socket_address.address for e in web.endpoints[0].lb_endpoints] == ["127.1.1.80"]


def test_a_namespace_without_a_sidecar_sees_everything() -> None:
    snapshot = _snapshot(*BASE, ISOLATE_A)
    proxy = _proxy(snapshot, "bclient", "b", "127.0.0.20")
    assert proxy.sidecar is None
    hosts = [_outbound(h, p) for h, p in ((WEB, 9080), (DB, 3306), (API, 9080), (OTHER, 8080), (TELEMETRY, 15010))]
    assert sorted(_cluster_names(proxy, snapshot)) == sorted([*hosts, *FIXED])


def test_route_tables_listeners_and_names_follow_the_scope() -> None:
    snapshot = _snapshot(*BASE, ISOLATE_A)
    proxy = _proxy(snapshot, "client", "a", "127.0.0.10")
    (scope,) = GENERATORS[ROUTE_TYPE].scopes(proxy)
    tables = {t.name: t for t in GENERATORS[ROUTE_TYPE].build_scope(scope, snapshot)}
    assert sorted(tables) == ["15010", "9080"]  # other.c's 8080 is out of scope
    assert [vh.name for vh in tables["9080"].virtual_hosts] == [port_routes.ALLOW_ANY_VIRTUAL_HOST, f"{WEB}:9080"]
    outbound = {lst.name for lst in listeners.build_outbound_service_listeners(proxy, snapshot)}
    assert outbound == {"0.0.0.0_9080", "0.0.0.0_15010", "10.0.1.56_3306"}  # no api.b, no other.c
    table = name_table.build_name_table(proxy, snapshot)
    assert sorted(table.table) == [DB, TELEMETRY, WEB]


@pytest.mark.parametrize(
    ("policy", "mesh_cluster", "vhost", "status"),
    [
        ("REGISTRY_ONLY", names.BLACKHOLE_CLUSTER, port_routes.BLOCK_ALL_VIRTUAL_HOST, 502),
        ("ALLOW_ANY", names.PASSTHROUGH_CLUSTER, port_routes.ALLOW_ANY_VIRTUAL_HOST, 0),
    ],
    ids=["registry-only", "allow-any"],
)
def test_outbound_traffic_policy_of_the_sidecar(policy: str, mesh_cluster: str, vhost: str, status: int) -> None:
    sidecar = _sidecar("default", "a", {"egress": [{"hosts": ["./*"]}], "outboundTrafficPolicy": {"mode": policy}})
    snapshot = _snapshot(*BASE, sidecar)
    proxy = _proxy(snapshot, "client", "a", "127.0.0.10")
    virtual_outbound = listeners.build_listeners(proxy, snapshot)[0]
    assert virtual_outbound.name == listeners.VIRTUAL_OUTBOUND
    assert virtual_outbound.default_filter_chain.name == listeners.PASSTHROUGH_CHAIN
    tcp_proxy = virtual_outbound.default_filter_chain.filters[0]
    assert mesh_cluster.encode() in tcp_proxy.typed_config.value
    (scope,) = GENERATORS[ROUTE_TYPE].scopes(proxy)
    (table,) = GENERATORS[ROUTE_TYPE].build_scope(scope, snapshot)
    catch_all = table.virtual_hosts[0]  # sorted by name
    assert (catch_all.name, list(catch_all.domains)) == (vhost, ["*"])
    assert catch_all.routes[0].direct_response.status == status


def _default_routes(proxy: Proxy, snapshot: MeshSnapshot) -> tuple[str, str]:
    """(the virtualOutbound default chain's tcp_proxy cluster, the allow_any virtual host's cluster)."""
    virtual_outbound = listeners.build_listeners(proxy, snapshot)[0]
    tcp_proxy = TcpProxy()
    virtual_outbound.default_filter_chain.filters[0].typed_config.Unpack(tcp_proxy)
    (scope,) = GENERATORS[ROUTE_TYPE].scopes(proxy)
    tables = GENERATORS[ROUTE_TYPE].build_scope(scope, snapshot)
    found = {v.routes[0].route.cluster for table in tables for v in table.virtual_hosts if v.domains == ["*"]}
    [cluster] = found  # every port's table has the same catch-all
    return tcp_proxy.cluster, cluster


@pytest.mark.parametrize("egress", [[{"hosts": ["./*"]}], []], ids=["with-egress-hosts", "policy-only"])
def test_an_egress_proxy_takes_allow_any_traffic_to_unknown_hosts(egress: list[dict[str, Any]]) -> None:
    policy = {"mode": "ALLOW_ANY", "egressProxy": {"host": "api.b.svc.cluster.local", "port": {"number": 9080}}}
    spec: dict[str, Any] = {"outboundTrafficPolicy": policy, **({"egress": egress} if egress else {})}
    snapshot = _snapshot(*BASE, _sidecar("default", "a", spec))
    proxy = _proxy(snapshot, "client", "a", "127.0.0.10")
    assert _default_routes(proxy, snapshot) == (_outbound(API, 9080), _outbound(API, 9080))
    assert _outbound(API, 9080) in _cluster_names(proxy, snapshot)  # in scope though ./* excludes b
    other = _proxy(snapshot, "bclient", "b", "127.0.0.20")  # no Sidecar: the original destination
    assert _default_routes(other, snapshot) == ("PassthroughCluster", "PassthroughCluster")


def test_an_egress_proxy_with_a_short_host_and_a_subset() -> None:
    rule = {
        "kind": "DestinationRule",
        "metadata": {"name": "web", "namespace": "a"},
        "spec": {"host": "web", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
    }
    policy = {"egressProxy": {"host": "web", "subset": "v1", "port": {"number": 9080}}}
    snapshot = _snapshot(*BASE, rule, _sidecar("default", "a", {"outboundTrafficPolicy": policy}))
    proxy = _proxy(snapshot, "client", "a", "127.0.0.10")
    subset_cluster = names.outbound_cluster_name(9080, "v1", WEB)
    assert _default_routes(proxy, snapshot) == (subset_cluster, subset_cluster)


@pytest.mark.parametrize(
    "proxy_destination",
    [
        {"host": "nowhere.example.com", "port": {"number": 80}},
        {"host": "api.b.svc.cluster.local", "port": {"number": 81}},
        {"host": "api.b.svc.cluster.local", "subset": "v9", "port": {"number": 9080}},
    ],
    ids=["unknown-host", "unknown-port", "undefined-subset"],
)
def test_an_egress_proxy_outside_the_registry_sends_nowhere(proxy_destination: dict[str, Any]) -> None:
    spec = {"egress": [{"hosts": ["./*"]}], "outboundTrafficPolicy": {"egressProxy": proxy_destination}}
    snapshot = _snapshot(*BASE, _sidecar("default", "a", spec))
    proxy = _proxy(snapshot, "client", "a", "127.0.0.10")
    assert _default_routes(proxy, snapshot) == ("BlackHoleCluster", "BlackHoleCluster")
    [finding] = [f for f in analyze_snapshot(snapshot) if f.code == "MP0216"]
    assert finding.level == "Error" and finding.resource == "Sidecar a/default"
    assert proxy_destination["host"] in finding.message


def test_analyze_is_quiet_about_an_egress_proxy_in_the_registry() -> None:
    policy = {"egressProxy": {"host": API, "port": {"number": 9080}}}
    snapshot = _snapshot(*BASE, _sidecar("default", "a", {"outboundTrafficPolicy": policy}))
    assert [f for f in analyze_snapshot(snapshot) if f.code == "MP0216"] == []


def test_a_selecting_sidecar_beats_the_namespace_one_which_beats_the_root_default() -> None:
    selecting = _sidecar(
        "special", "a", {"workloadSelector": {"labels": {"app": "special"}}, "egress": [{"hosts": ["b/*"]}]}
    )
    root = _sidecar("default", "istio-system", {"egress": [{"hosts": ["./*"]}]})
    snapshot = _snapshot(*BASE, ISOLATE_A, selecting, root)
    special = _proxy(snapshot, "special", "a", "127.0.0.11")
    assert special.sidecar == ConfigKey(kind="Sidecar", namespace="a", name="special")
    assert _cluster_names(special, snapshot) == [_outbound(API, 9080), *FIXED]
    client = _proxy(snapshot, "client", "a", "127.0.0.10")
    assert client.sidecar == ConfigKey(kind="Sidecar", namespace="a", name="default")
    # namespace b has no Sidecar: the root namespace's default, whose "." is b itself
    bclient = _proxy(snapshot, "bclient", "b", "127.0.0.20")
    assert bclient.sidecar == ConfigKey(kind="Sidecar", namespace="istio-system", name="default")
    assert _cluster_names(bclient, snapshot) == [_outbound(API, 9080), *FIXED]


def test_two_namespace_defaults_the_first_in_name_order_applies_and_the_conflict_is_reported() -> None:
    second = _sidecar("zz-second", "a", {"egress": [{"hosts": ["*/*"]}]})
    snapshot = _snapshot(*BASE, ISOLATE_A, second)
    assert _proxy(snapshot, "client", "a", "127.0.0.10").sidecar == ConfigKey(
        kind="Sidecar", namespace="a", name="default"
    )
    assert snapshot.sidecars.conflicts == (
        "namespace a: Sidecars default, zz-second have no workloadSelector; default applies (the first in name order)",
    )


def test_a_port_listener_admits_only_that_port_and_protocol_but_clusters_keep_every_port() -> None:
    sidecar = _sidecar(
        "default",
        "a",
        {"egress": [{"port": {"number": 8080, "protocol": "HTTP"}, "hosts": ["c/*"]}, {"hosts": ["./*"]}]},
    )
    snapshot = _snapshot(*BASE, sidecar)
    proxy = _proxy(snapshot, "client", "a", "127.0.0.10")
    (scope,) = GENERATORS[ROUTE_TYPE].scopes(proxy)
    tables = {t.name: [vh.name for vh in t.virtual_hosts] for t in GENERATORS[ROUTE_TYPE].build_scope(scope, snapshot)}
    assert tables == {"8080": ["allow_any", f"{OTHER}:8080"], "9080": ["allow_any", f"{WEB}:9080"]}
    tcp_instead = _sidecar(
        "default", "a", {"egress": [{"port": {"number": 8080, "protocol": "TCP"}, "hosts": ["c/*"]}]}
    )
    snapshot = _snapshot(*BASE, tcp_instead)
    proxy = _proxy(snapshot, "client", "a", "127.0.0.10")
    assert listeners.build_outbound_service_listeners(proxy, snapshot) == []  # other.c:8080 is HTTP, not TCP
    assert _cluster_names(proxy, snapshot) == [_outbound(OTHER, 8080), *FIXED]


def test_a_virtual_service_in_scope_brings_the_services_it_routes_to() -> None:
    vs = {
        "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": "a"},
        "spec": {"hosts": ["web"], "http": [{"route": [{"destination": {"host": API}}]}]},
    }
    snapshot = _snapshot(*BASE, ISOLATE_A, vs)
    proxy = _proxy(snapshot, "client", "a", "127.0.0.10")
    assert _outbound(API, 9080) in _cluster_names(proxy, snapshot)
    assert _outbound(OTHER, 8080) not in _cluster_names(proxy, snapshot)


def test_capture_mode_default_and_iptables_are_how_pods_capture() -> None:
    def generated(capture: Mapping[str, str]) -> dict[str, bytes]:
        snapshot = _snapshot(*BASE, _sidecar("default", "a", {"egress": [{"hosts": ["./*"], **capture}]}))
        proxy = _proxy(snapshot, "client", "a", "127.0.0.10")
        out: dict[str, bytes] = {}
        for type_url, generator in GENERATORS.items():
            messages = [m for s in generator.scopes(proxy) for m in generator.build_scope(s, snapshot)]
            for message in [*messages, *generator.build_proxy(proxy, snapshot)]:
                out[f"{type_url} {getattr(message, 'name', '')}"] = message.SerializeToString(deterministic=True)
        return out

    without = generated({})
    assert generated({"captureMode": "DEFAULT"}) == without
    assert generated({"captureMode": "IPTABLES"}) == without
    assert generated({"captureMode": "IPTABLES"}) != generated({"captureMode": "IPTABLES", "hosts": ["~/*"]})


def test_egress_port_name_is_checked_and_names_nothing_generated() -> None:
    def tables(port: Mapping[str, Any]) -> list[bytes]:
        snapshot = _snapshot(*BASE, _sidecar("default", "a", {"egress": [{"port": port, "hosts": ["./*"]}]}))
        proxy = _proxy(snapshot, "client", "a", "127.0.0.10")
        (scope,) = GENERATORS[ROUTE_TYPE].scopes(proxy)
        return [t.SerializeToString(deterministic=True) for t in GENERATORS[ROUTE_TYPE].build_scope(scope, snapshot)]

    # Istio names nothing after an egress port's name either: it is a label for people
    assert tables({"number": 9080, "protocol": "HTTP", "name": "egresshttp"}) == tables(
        {"number": 9080, "protocol": "HTTP"}
    )


def test_proxies_under_one_sidecar_share_bytes_and_scopes_are_keyed_by_the_sidecar() -> None:
    snapshot = _snapshot(*BASE, ISOLATE_A, _workload("client2", "a", "127.0.0.12", {"app": "client"}))
    cache = ResourceCache(snapshot, GENERATORS)
    one, two = (_proxy(snapshot, w, "a", ip).node for w, ip in (("client", "127.0.0.10"), ("client2", "127.0.0.12")))
    key = ConfigKey(kind="Sidecar", namespace="a", name="default")
    assert clusters.cluster_scopes(cache.proxy(one)) == [("outbound", "a", key)]
    for type_url in (CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE, NAME_TABLE_TYPE):
        first, second = cache.view(type_url, one), cache.view(type_url, two)
        assert first.groups[0] is second.groups[0], type_url
    assert cache.dangling(one) == {}
    assert cache.view(LISTENER_TYPE, one).resources


def test_a_sidecar_change_regenerates_every_type_and_a_virtual_service_change_the_scoped_ones() -> None:
    first = _snapshot(*BASE)
    scoped = _snapshot(*BASE, ISOLATE_A, previous=first)
    assert "Sidecar" in scoped.changed_kinds
    for generator in GENERATORS.values():  # but the launcher's ProxyConfig: no Sidecar field is in it
        assert ("Sidecar" in generator.affected_by) is (generator.type_url != PROXY_CONFIG_TYPE)
    vs = {
        "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": "a"},
        "spec": {"hosts": ["web"], "http": [{"route": [{"destination": {"host": API}}]}]},
    }
    changed = _snapshot(*BASE, ISOLATE_A, vs, previous=scoped)
    assert SIDECAR_SCOPE_KIND in changed.changed_kinds
    unscoped = _snapshot(*BASE, vs, previous=first)
    assert SIDECAR_SCOPE_KIND not in unscoped.changed_kinds
    cache = ResourceCache(changed, GENERATORS, previous=ResourceCache(scoped, GENERATORS))
    assert CLUSTER_TYPE not in cache.reused_types


AUTHZ_MESH = MeshSettings(
    extension_providers=(
        ExtAuthzHttpProvider(name="http-authz", service=f"c/{OTHER}", port=8080),
        ExtAuthzGrpcProvider(name="grpc-authz", service=f"b/{OTHER}", port=8080),  # not b's: no such service
    )
)
JWKS_FROM_API = {
    "kind": "RequestAuthentication",
    "metadata": {"name": "jwt", "namespace": "a"},
    "spec": {"jwtRules": [{"issuer": "iss", "jwksUri": f"http://{API}:9080/jwks.json"}]},
}


def test_the_services_a_proxys_own_filters_call_keep_their_clusters_under_a_sidecar() -> None:
    snapshot = _snapshot(*BASE, ISOLATE_A, JWKS_FROM_API, mesh=AUTHZ_MESH)
    proxy = _proxy(snapshot, "client", "a", "127.0.0.10")
    found = _cluster_names(proxy, snapshot)
    # the ext_authz provider's (other.c) and the JWKS server's (api.b), though ./* and istio-system/* exclude them
    assert _outbound(OTHER, 8080) in found and _outbound(API, 9080) in found
    (scope,) = endpoints.endpoint_scopes(proxy)
    assigned = {a.cluster_name for a in endpoints.build_scope_load_assignments(scope, snapshot)}
    assert {_outbound(OTHER, 8080), _outbound(API, 9080)} <= assigned
    # clusters only: no listener, virtual host or name for them
    ports = {x.address.socket_address.port_value for x in listeners.build_outbound_service_listeners(proxy, snapshot)}
    assert 8080 not in ports
    table = name_table.build_name_table(proxy, snapshot)
    assert not any(OTHER in name or API in name for name in table.table)
    without = _snapshot(*BASE, ISOLATE_A)
    assert _outbound(OTHER, 8080) not in _cluster_names(proxy, without)


def test_a_request_authentication_or_mesh_config_change_changes_the_scopes() -> None:
    scoped = _snapshot(*BASE, ISOLATE_A)
    with_jwt = _snapshot(*BASE, ISOLATE_A, JWKS_FROM_API, previous=scoped)
    assert SIDECAR_SCOPE_KIND in with_jwt.changed_kinds
    with_authz = _snapshot(*BASE, ISOLATE_A, JWKS_FROM_API, previous=with_jwt, mesh=AUTHZ_MESH)
    assert MESH_CONFIG_KIND in with_authz.changed_kinds and SIDECAR_SCOPE_KIND in with_authz.changed_kinds
    cache = ResourceCache(with_authz, GENERATORS, previous=ResourceCache(with_jwt, GENERATORS))
    assert CLUSTER_TYPE not in cache.reused_types


def test_analyze_reports_two_namespace_defaults() -> None:
    snapshot = _snapshot(*BASE, ISOLATE_A, _sidecar("zz-second", "a", {"egress": [{"hosts": ["*/*"]}]}))
    findings = [f for f in analyze_snapshot(snapshot) if f.code == "MP0214"]
    assert [(f.level, f.message) for f in findings] == [("Error", snapshot.sidecars.conflicts[0])]
