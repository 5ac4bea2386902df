"""Authorization on a sidecar's inbound listeners: filter order, the ext_authz filter calling Mixer, port
translation, failing closed without the mixer cluster, TCP ports, listeners unchanged without policies, and real
``envoy --mode validate`` over a whole sidecar bootstrap with RBAC, ext_authz and gRPC access logs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import structlog
from envoy.config.core.v3.config_source_pb2 import ApiVersion
from envoy.config.rbac.v3.rbac_pb2 import RBAC, Permission, Policy, Principal
from envoy.extensions.filters.http.ext_authz.v3.ext_authz_pb2 import ExtAuthz
from envoy.extensions.filters.http.rbac.v3.rbac_pb2 import RBAC as HttpRBAC
from envoy.extensions.filters.network.rbac.v3.rbac_pb2 import RBAC as NetworkRBAC
from envoy.type.matcher.v3.metadata_pb2 import MetadataMatcher
from envoy.type.matcher.v3.string_pb2 import StringMatcher
from envoy.type.v3.http_status_pb2 import StatusCode

from envoy_bootstrap.bootstrap import build_sidecar_bootstrap
from meshplane import names
from pilot.config.types import (
    AccessList,
    AuthorizationAction,
    AuthorizationCondition,
    AuthorizationOperation,
    AuthorizationPolicy,
    AuthorizationRule,
    AuthorizationSource,
    ConfigMeta,
    PeerAuthentication,
    Protocol,
    RateLimit,
    Resource,
    WorkloadEntry,
)
from pilot.generate import authz_filters, clusters, endpoints, filter_chains, listeners
from pilot.generate.rbac import build_rbac
from pilot.generate.registry import GENERATORS, LISTENER_TYPE, ROUTE_TYPE
from pilot.model import MeshSnapshot, Proxy, build_snapshot
from tests.sidecar_builders import MIXER, inbound_service, listeners_by_port, only_hcm, sidecar, unpack
from tests.source_builders import generated_type
from tests.xdstest import check_resources, envoy_validate

MakeMeta = Callable[..., ConfigMeta]
ADDRESS = "127.0.0.21"
WEB = "web.default.svc.cluster.local"


def mesh(make_meta: MakeMeta, *extra: Resource) -> MeshSnapshot:
    """Workload ``app`` (labels app=app) serves web (HTTP 9080 -> 19080), rpc (GRPC 9090 -> 19090) and db (TCP
    5432 -> 15432); workload ``other`` (app=other) serves nothing."""
    resources: list[Resource] = [
        inbound_service(make_meta, "web", 9080, Protocol.HTTP, 19080, app="app"),
        inbound_service(make_meta, "rpc", 9090, Protocol.GRPC, 19090, app="app"),
        inbound_service(make_meta, "db", 5432, Protocol.TCP, 15432, app="app"),
        WorkloadEntry(meta=make_meta("WorkloadEntry", "app"), address=ADDRESS, labels=MappingProxyType({"app": "app"})),
        WorkloadEntry(
            meta=make_meta("WorkloadEntry", "other"), address="127.0.0.22", labels=MappingProxyType({"app": "other"})
        ),
        *extra,
    ]
    return build_snapshot({r.meta.key: r for r in resources}, version=1)


def proxy_of(snapshot: MeshSnapshot, metadata: dict[str, str] | None = None) -> Proxy:
    return sidecar(snapshot, "app", ADDRESS, metadata)


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the once-per-proxy warnings as a new process would, whatever ran before it."""
    monkeypatch.setattr(authz_filters, "_warned", set())


def authz(
    make_meta: MakeMeta,
    name: str,
    action: AuthorizationAction,
    *rules: AuthorizationRule,
    namespace: str = "default",
    selector: dict[str, str] | None = None,
    provider: str | None = None,
) -> AuthorizationPolicy:
    return AuthorizationPolicy(
        meta=make_meta("AuthorizationPolicy", name, namespace),
        selector=MappingProxyType(selector) if selector is not None else None,
        action=action,
        provider=provider,
        rules=rules,
    )


def access_list(make_meta: MakeMeta, *, fail_open: bool = False, app: str = "app") -> AccessList:
    return AccessList(
        meta=make_meta("AccessList", f"list-{app}"),
        selector=MappingProxyType({"app": app}),
        value="source.workload.name",
        entries=("bad",),
        mode="deny",
        fail_open=fail_open,
    )


def rate_limit(make_meta: MakeMeta, *, fail_open: bool) -> RateLimit:
    return RateLimit(meta=make_meta("RateLimit", "limit"), requests=10, per=1.0, fail_open=fail_open)


PATH_RULE = AuthorizationRule(operations=(AuthorizationOperation(paths=("/admin",)),))
NS_RULE = AuthorizationRule(sources=(AuthorizationSource(namespaces=("default",)),))


def http_filters(proxy: Proxy, snapshot: MeshSnapshot, port: int = 9080) -> list[tuple[str, Any]]:
    """(name, unpacked config) of the port's HTTP filters before fault, CORS and router."""
    filters = list(only_hcm(listeners_by_port(proxy, snapshot)[f"inbound:{port}"]).http_filters)
    assert [f.name for f in filters[-3:]] == [names.FAULT_FILTER, names.CORS_FILTER, names.ROUTER_FILTER]
    types = {names.RBAC_FILTER: HttpRBAC, names.EXT_AUTHZ_FILTER: ExtAuthz}
    return [(f.name, unpack(types[f.name](), f.typed_config)) for f in filters[:-3]]


def deny_all(name: str = authz_filters.MIXER_DENY_ALL_POLICY) -> RBAC:
    return RBAC(
        action=RBAC.DENY, policies={name: Policy(permissions=[Permission(any=True)], principals=[Principal(any=True)])}
    )


# ------------------------------------------------------------------------------------------------ HTTP order


def test_http_filters_in_istio_order(make_meta: MakeMeta) -> None:
    """CUSTOM (shadow RBAC + ext_authz), AUDIT, DENY, ALLOW; then fault, CORS and router."""
    snapshot = mesh(
        make_meta,
        authz(make_meta, "allow", "ALLOW", NS_RULE),
        authz(make_meta, "deny", "DENY", PATH_RULE),
        authz(make_meta, "audit", "AUDIT", AuthorizationRule()),
        authz(make_meta, "custom", "CUSTOM", PATH_RULE, provider="mixer"),
        authz(make_meta, "mesh-deny", "DENY", NS_RULE, namespace="istio-system"),
    )
    ports = {19080: 9080}
    filters = http_filters(proxy_of(snapshot, MIXER), snapshot)
    assert [name for name, _ in filters] == [
        names.RBAC_FILTER,
        names.EXT_AUTHZ_FILTER,
        names.RBAC_FILTER,
        names.RBAC_FILTER,
        names.RBAC_FILTER,
    ]
    custom = [p for ps in snapshot.authorization_policies.values() for p in ps if p.action == "CUSTOM"]
    shadow, ext_authz, audit, deny, allow = (config for _, config in filters)
    assert shadow == HttpRBAC(
        shadow_rules=build_rbac(custom, action="DENY", ports=ports, custom=True),
        shadow_rules_stat_prefix="istio_ext_authz_",
    )
    assert list(shadow.shadow_rules.policies) == ["istio-ext-authz-ns[default]-policy[custom]-rule[0]"]
    assert not shadow.HasField("rules")  # evaluates, never enforces
    assert ext_authz.HasField("filter_enabled_metadata")
    assert audit.rules.action == RBAC.LOG and list(audit.rules.policies) == ["ns[default]-policy[audit]-rule[0]"]
    assert deny.rules.action == RBAC.DENY
    assert sorted(deny.rules.policies) == [
        "ns[default]-policy[deny]-rule[0]",
        "ns[istio-system]-policy[mesh-deny]-rule[0]",
    ]
    assert allow.rules.action == RBAC.ALLOW and list(allow.rules.policies) == ["ns[default]-policy[allow]-rule[0]"]
    assert not any(c.HasField("shadow_rules") for c in (audit, deny, allow))  # enforced, not shadow


def test_ext_authz_calls_mixer_only_for_matching_custom_rules(make_meta: MakeMeta) -> None:
    snapshot = mesh(make_meta, authz(make_meta, "custom", "CUSTOM", PATH_RULE, provider="mixer"))
    [_, (_, ext_authz)] = http_filters(proxy_of(snapshot, MIXER), snapshot)
    assert ext_authz.grpc_service.envoy_grpc.cluster_name == "mixer"
    assert ext_authz.grpc_service.timeout.ToMilliseconds() == 500
    assert ext_authz.transport_api_version == ApiVersion.V3
    assert not ext_authz.failure_mode_allow  # CUSTOM always fails closed
    assert ext_authz.status_on_error.code == StatusCode.Forbidden
    assert not ext_authz.include_peer_certificate
    assert not ext_authz.HasField("with_request_body")
    assert ext_authz.filter_enabled_metadata == MetadataMatcher(
        filter="envoy.filters.http.rbac",
        path=[MetadataMatcher.PathSegment(key="istio_ext_authz_shadow_effective_policy_id")],
        value={"string_match": StringMatcher(prefix="istio-ext-authz")},
    )


@pytest.mark.parametrize(("fail_open", "allowed"), [(False, False), (True, True)])
def test_mixer_policies_check_every_request(make_meta: MakeMeta, fail_open: bool, allowed: bool) -> None:
    snapshot = mesh(make_meta, access_list(make_meta, fail_open=fail_open), rate_limit(make_meta, fail_open=True))
    [(name, ext_authz)] = http_filters(proxy_of(snapshot, MIXER), snapshot)
    assert name == names.EXT_AUTHZ_FILTER  # no shadow RBAC: nothing decides whether to call
    assert not ext_authz.HasField("filter_enabled_metadata")
    assert ext_authz.failure_mode_allow is allowed
    assert ext_authz == authz_filters.build_ext_authz(fail_open=fail_open, every_request=True)


def test_custom_and_mixer_policies_together(make_meta: MakeMeta) -> None:
    snapshot = mesh(
        make_meta,
        authz(make_meta, "custom", "CUSTOM", PATH_RULE, provider="mixer"),
        access_list(make_meta, fail_open=True),
    )
    [(_, shadow), (_, ext_authz)] = http_filters(proxy_of(snapshot, MIXER), snapshot)
    assert list(shadow.shadow_rules.policies) == ["istio-ext-authz-ns[default]-policy[custom]-rule[0]"]
    assert not ext_authz.HasField("filter_enabled_metadata")  # the AccessList needs every request
    assert not ext_authz.failure_mode_allow  # a CUSTOM policy never fails open


def test_allow_policy_without_rules_denies_everything(make_meta: MakeMeta) -> None:
    snapshot = mesh(make_meta, authz(make_meta, "nothing", "ALLOW"))
    [(_, allow)] = http_filters(proxy_of(snapshot), snapshot)
    assert allow.rules.action == RBAC.ALLOW
    [never] = allow.rules.policies.values()
    assert list(never.permissions) == [Permission(not_rule=Permission(any=True))]


def test_policies_apply_only_to_selected_workloads(make_meta: MakeMeta) -> None:
    snapshot = mesh(
        make_meta,
        authz(make_meta, "for-other", "DENY", NS_RULE, selector={"app": "other"}),
        authz(make_meta, "elsewhere", "DENY", NS_RULE, namespace="team"),
        access_list(make_meta, app="other"),
    )
    assert http_filters(proxy_of(snapshot, MIXER), snapshot) == []
    assert [n for n, _ in http_filters(proxy_of(snapshot, MIXER), snapshot, port=9090)] == []


def test_policy_ports_are_workload_ports(make_meta: MakeMeta) -> None:
    """Port 19080 (web's app) becomes the listener's 9080; 19090 becomes 9090 on the rpc listener only."""
    rule = AuthorizationRule(operations=(AuthorizationOperation(ports=(19080, 19090, 9080)),))
    snapshot = mesh(make_meta, authz(make_meta, "ports", "ALLOW", rule))
    proxy = proxy_of(snapshot)

    def ports(port: int) -> list[int]:
        [(_, allow)] = http_filters(proxy, snapshot, port)
        [policy] = allow.rules.policies.values()
        return [r.destination_port for r in policy.permissions[0].and_rules.rules[0].or_rules.rules]

    assert ports(9080) == [9080, 19090, 9080]
    assert ports(9090) == [19080, 9090, 9080]


# ------------------------------------------------------------------------------------------------ no Mixer


def test_custom_without_mixer_cluster_denies_what_it_would_check(make_meta: MakeMeta) -> None:
    snapshot = mesh(make_meta, authz(make_meta, "custom", "CUSTOM", PATH_RULE, provider="mixer"))
    proxy = proxy_of(snapshot)
    with structlog.testing.capture_logs() as logs:
        [(name, denied)] = http_filters(proxy, snapshot)
        http_filters(proxy, snapshot)
    assert name == names.RBAC_FILTER
    expected = build_rbac(snapshot.authorization_policies["default"], action="DENY", ports={19080: 9080}, custom=True)
    assert denied == HttpRBAC(
        rules=RBAC(
            action=RBAC.DENY,
            policies={
                "istio-ext-authz-ns[default]-policy[custom]-rule[0]-deny-due-to-bad-CUSTOM-action": expected.policies[
                    "istio-ext-authz-ns[default]-policy[custom]-rule[0]"
                ]
            },
        )
    )
    warnings = [e for e in logs if e["event"] == "mixer_checks_fail_closed"]
    assert sorted((e["proxy"], e["reason"]) for e in warnings) == [  # each once, for two builds
        (proxy.node.id, "Mixer policies on a TCP port"),  # the db port: no TCP ext_authz either
        (proxy.node.id, "no mixer cluster"),
    ]


def test_unknown_custom_provider_fails_closed(make_meta: MakeMeta) -> None:
    snapshot = mesh(make_meta, authz(make_meta, "custom", "CUSTOM", PATH_RULE, provider="opa"))
    [(name, denied)] = http_filters(proxy_of(snapshot, MIXER), snapshot)
    assert name == names.RBAC_FILTER
    assert list(denied.rules.policies) == [
        "istio-ext-authz-ns[default]-policy[custom]-rule[0]-deny-due-to-bad-CUSTOM-action"
    ]


@pytest.mark.parametrize(("fail_open", "expected"), [(False, [deny_all()]), (True, [])])
def test_mixer_policies_without_mixer_cluster(make_meta: MakeMeta, fail_open: bool, expected: list[RBAC]) -> None:
    snapshot = mesh(make_meta, access_list(make_meta, fail_open=fail_open))
    assert [config.rules for _, config in http_filters(proxy_of(snapshot), snapshot)] == expected


# ------------------------------------------------------------------------------------------------ TCP


def tcp_filters(proxy: Proxy, snapshot: MeshSnapshot) -> list[NetworkRBAC]:
    [chain] = listeners_by_port(proxy, snapshot)["inbound:5432"].filter_chains
    assert [f.name for f in chain.filters][-1] == filter_chains.TCP_PROXY
    assert {f.name for f in chain.filters[:-1]} <= {names.RBAC_NETWORK_FILTER}
    return [unpack(NetworkRBAC(), f.typed_config) for f in chain.filters[:-1]]


def test_tcp_port_gets_network_rbac_before_tcp_proxy(make_meta: MakeMeta) -> None:
    snapshot = mesh(
        make_meta,
        authz(make_meta, "allow", "ALLOW", NS_RULE, PATH_RULE),
        authz(make_meta, "deny", "DENY", PATH_RULE),
        authz(make_meta, "audit", "AUDIT", NS_RULE),
    )
    audit, deny, allow = tcp_filters(proxy_of(snapshot), snapshot)
    assert {audit.stat_prefix, deny.stat_prefix, allow.stat_prefix} == {"tcp."}
    assert audit.rules.action == RBAC.LOG
    assert deny.rules.action == RBAC.DENY  # /admin cannot be seen on TCP: deny every connection
    assert list(deny.rules.policies["ns[default]-policy[deny]-rule[0]"].permissions) == [
        Permission(and_rules=Permission.Set(rules=[Permission(any=True)]))
    ]
    assert allow.rules.action == RBAC.ALLOW  # the path rule cannot allow anything on TCP: dropped
    assert list(allow.rules.policies) == ["ns[default]-policy[allow]-rule[0]"]


@pytest.mark.parametrize("metadata", [MIXER, None])
def test_tcp_port_fails_closed_for_custom_and_mixer_policies(
    make_meta: MakeMeta, metadata: dict[str, str] | None
) -> None:
    custom = mesh(make_meta, authz(make_meta, "custom", "CUSTOM", NS_RULE, provider="mixer"))
    [denied] = tcp_filters(proxy_of(custom, metadata), custom)
    assert denied.rules.action == RBAC.DENY
    assert list(denied.rules.policies) == [
        "istio-ext-authz-ns[default]-policy[custom]-rule[0]-deny-due-to-bad-CUSTOM-action"
    ]
    mixer = mesh(make_meta, access_list(make_meta))
    assert [f.rules for f in tcp_filters(proxy_of(mixer, metadata), mixer)] == [deny_all()]
    open_mixer = mesh(make_meta, access_list(make_meta, fail_open=True))
    assert tcp_filters(proxy_of(open_mixer, metadata), open_mixer) == []


def test_network_rbac_on_every_mtls_chain(make_meta: MakeMeta) -> None:
    peer = PeerAuthentication(meta=make_meta("PeerAuthentication", "default", "istio-system"), mode="PERMISSIVE")
    snapshot = mesh(make_meta, peer, authz(make_meta, "deny", "DENY", NS_RULE))
    listener = listeners_by_port(proxy_of(snapshot, {"MESHPLANE_SDS": "true"}), snapshot)["inbound:5432"]
    assert [(chain.name, [f.name for f in chain.filters]) for chain in listener.filter_chains] == [
        (f"inbound_0.0.0.0_5432_{name}", [names.RBAC_NETWORK_FILTER, filter_chains.TCP_PROXY])
        for name in ("mtls", "tls-passthrough", "plaintext")
    ]  # the app's own TLS passed through is no way around the policy


# ------------------------------------------------------------------------------------------------ unchanged


def test_listeners_without_policies_or_mixer_are_unchanged(make_meta: MakeMeta) -> None:
    """Byte for byte the listeners of a mesh without policies, when the policies there select other workloads;
    neither has a Mixer or RBAC filter."""
    plain = mesh(make_meta)
    others = mesh(
        make_meta,
        authz(make_meta, "for-other", "DENY", NS_RULE, selector={"app": "other"}),
        access_list(make_meta, app="other"),
    )
    without = serialized(listeners.build_listeners(proxy_of(plain), plain))
    assert serialized(listeners.build_listeners(proxy_of(others), others)) == without
    assert b"mixer" not in b"".join(without) and b"rbac" not in b"".join(without)


def serialized(messages: Sequence[Any]) -> list[bytes]:
    return [m.SerializeToString(deterministic=True) for m in messages]


def test_listeners_are_regenerated_when_policies_change() -> None:
    assert {"AuthorizationPolicy", "AccessList", "RateLimit"} <= GENERATORS[LISTENER_TYPE].affected_by


# ------------------------------------------------------------------------------------------------ real Envoy


@pytest.mark.parametrize("mixer", [True, False], ids=["mixer", "no-mixer"])
def test_envoy_accepts_a_sidecar_with_policies_and_telemetry(tmp_path: Path, make_meta: MakeMeta, mixer: bool) -> None:
    """The whole sidecar bootstrap (--mixer: mixer cluster) with its listeners, clusters and
    routes inlined as static resources: RBAC on HTTP and TCP, ext_authz, gRPC access logs."""
    every_field = AuthorizationRule(
        sources=(
            AuthorizationSource(
                principals=("cluster.local/ns/default/sa/*",),
                not_principals=("*",),
                namespaces=("def*",),
                not_namespaces=("kube-*",),
                ip_blocks=("127.0.0.0/8",),
                not_ip_blocks=("::1",),
                remote_ip_blocks=("10.0.0.1",),
                request_principals=("iss/sub",),
            ),
        ),
        operations=(
            AuthorizationOperation(
                hosts=("*.svc.cluster.local",), methods=("GET", "*"), paths=("/a/*", "*.png"), ports=(19080, 5432)
            ),
        ),
    )
    when = AuthorizationRule(
        when=tuple(
            AuthorizationCondition(key=key, values=(value,), not_values=(value,))
            for key, value in [
                ("request.headers[x-user]", "alice"),
                ("source.ip", "127.0.0.1"),
                ("remote.ip", "10.0.0.0/8"),
                ("source.namespace", "default"),
                ("source.principal", "cluster.local/ns/default/sa/web"),
                ("request.auth.claims[groups]", "admin"),
                ("destination.ip", "127.0.0.21"),
                ("destination.port", "19080"),
                ("connection.sni", "*.local"),
            ]
        )
    )
    snapshot = mesh(
        make_meta,
        authz(make_meta, "allow", "ALLOW", every_field, when),
        authz(make_meta, "deny", "DENY", every_field),
        authz(make_meta, "audit", "AUDIT", when),
        authz(make_meta, "custom", "CUSTOM", PATH_RULE, provider="mixer"),
        access_list(make_meta),
    )
    proxy = proxy_of(snapshot, MIXER if mixer else None)
    built_listeners = listeners.build_listeners(proxy, snapshot)
    built_clusters = [
        *(c for s in clusters.cluster_scopes(proxy) for c in clusters.build_scope_clusters(s, snapshot)),
        *clusters.build_inbound_clusters(proxy, snapshot),
    ]
    tables = generated_type(ROUTE_TYPE, proxy, snapshot)
    check_resources(clusters=built_clusters, listeners=built_listeners, routes=tables)
    text = b"".join(serialized(built_listeners))
    assert (b"envoy.filters.http.ext_authz" in text, b"http_grpc" in text) == (mixer, mixer)
    assert b"envoy.filters.network.rbac" in text

    bootstrap = build_sidecar_bootstrap(workload="app", address=ADDRESS, mixer="127.0.0.1:9091" if mixer else None)
    assignments = [
        *(a for s in endpoints.endpoint_scopes(proxy) for a in endpoints.build_scope_load_assignments(s, snapshot)),
        *endpoints.build_proxy_load_assignments(proxy, snapshot),
    ]
    envoy_validate(tmp_path, built_clusters, built_listeners, tables, assignments, bootstrap=bootstrap)
