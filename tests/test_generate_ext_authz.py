"""CUSTOM policies calling a MeshConfig extension provider: the ext_authz filter field by field (HTTP and gRPC),
the provider's service resolved to its outbound cluster, failing closed when the provider cannot be called, one
provider per workload, Mixer policies beside a provider, and real ``envoy --mode validate`` of such a sidecar."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import structlog
from envoy.config.core.v3.base_pb2 import HeaderValue
from envoy.config.core.v3.config_source_pb2 import ApiVersion
from envoy.config.core.v3.grpc_service_pb2 import GrpcService
from envoy.config.core.v3.http_uri_pb2 import HttpUri
from envoy.config.rbac.v3.rbac_pb2 import Permission
from envoy.extensions.filters.http.ext_authz.v3.ext_authz_pb2 import (
    AuthorizationRequest,
    AuthorizationResponse,
    BufferSettings,
    ExtAuthz,
    HttpService,
)
from envoy.extensions.filters.http.rbac.v3.rbac_pb2 import RBAC as HttpRBAC
from envoy.extensions.filters.network.ext_authz.v3.ext_authz_pb2 import ExtAuthz as NetworkExtAuthz
from envoy.extensions.filters.network.rbac.v3.rbac_pb2 import RBAC as NetworkRBAC
from envoy.type.matcher.v3.string_pb2 import ListStringMatcher, StringMatcher
from envoy.type.v3.http_status_pb2 import HttpStatus, StatusCode

from envoy_bootstrap.bootstrap import build_sidecar_bootstrap
from meshplane import names
from pilot.config.mesh_extension_providers import (
    ExtAuthzGrpcProvider,
    ExtAuthzHttpProvider,
    ExtAuthzRequestBody,
    ExtensionProvider,
)
from pilot.config.types import (
    AccessList,
    AuthorizationOperation,
    AuthorizationPolicy,
    AuthorizationRule,
    ConfigMeta,
    Protocol,
    Resource,
    ServiceEntry,
    ServicePort,
    WorkloadEntry,
)
from pilot.config.types import Resolution as ServiceResolution
from pilot.generate import authz_filters, clusters, endpoints, listeners
from pilot.generate.ext_authz import custom_rules_matched, header_matchers, provider_ext_authz
from pilot.generate.registry import ROUTE_TYPE
from pilot.model import MeshSettings, MeshSnapshot, Proxy, build_snapshot
from tests.sidecar_builders import MIXER, inbound_service, listeners_by_port, only_hcm, sidecar, unpack
from tests.source_builders import generated_type
from tests.xdstest import check_resources, envoy_validate

MakeMeta = Callable[..., ConfigMeta]
ADDRESS = "127.0.0.21"
AUTHZ_HOST = "ext-authz.foo.svc.cluster.local"
HTTP_CLUSTER = f"outbound|8000||{AUTHZ_HOST}"
GRPC_CLUSTER = f"outbound|9000||{AUTHZ_HOST}"
HTTP = ExtAuthzHttpProvider(name="http", service=AUTHZ_HOST, port=8000)
GRPC = ExtAuthzGrpcProvider(name="grpc", service=f"foo/{AUTHZ_HOST}", port=9000)
PATH_RULE = AuthorizationRule(operations=(AuthorizationOperation(paths=("/headers",)),))


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authz_filters, "_warned", set())


def authz_service(make_meta: MakeMeta) -> ServiceEntry:
    return ServiceEntry(
        meta=make_meta("ServiceEntry", "ext-authz", "foo"),
        hosts=(AUTHZ_HOST,),
        ports=(
            ServicePort(number=8000, name="http", protocol=Protocol.HTTP, target_port=8000),
            ServicePort(number=9000, name="grpc", protocol=Protocol.GRPC, target_port=9000),
        ),
        location="MESH_INTERNAL",
        resolution=ServiceResolution.STATIC,
        workload_selector=MappingProxyType({"app": "ext-authz"}),
    )


def mesh(
    make_meta: MakeMeta, *extra: Resource, providers: tuple[ExtensionProvider, ...] = (HTTP, GRPC)
) -> MeshSnapshot:
    """Workload ``app`` serves web (HTTP 9080 -> 19080); ext-authz.foo serves 8000 (HTTP) and 9000 (gRPC)."""
    resources: list[Resource] = [
        inbound_service(make_meta, "web", 9080, Protocol.HTTP, 19080, app="app"),
        WorkloadEntry(meta=make_meta("WorkloadEntry", "app"), address=ADDRESS, labels=MappingProxyType({"app": "app"})),
        authz_service(make_meta),
        WorkloadEntry(
            meta=make_meta("WorkloadEntry", "ext-authz", "foo"),
            address="127.0.0.30",
            labels=MappingProxyType({"app": "ext-authz"}),
        ),
        *extra,
    ]
    return build_snapshot(
        {r.meta.key: r for r in resources}, version=1, mesh=MeshSettings(extension_providers=providers)
    )


def custom(make_meta: MakeMeta, name: str, provider: str) -> AuthorizationPolicy:
    return AuthorizationPolicy(
        meta=make_meta("AuthorizationPolicy", name),
        selector=MappingProxyType({"app": "app"}),
        action="CUSTOM",
        provider=provider,
        rules=(PATH_RULE,),
    )


def http_filters(proxy: Proxy, snapshot: MeshSnapshot) -> list[tuple[str, Any]]:
    """(name, unpacked config) of the web port's filters before fault, CORS and router."""
    filters = list(only_hcm(listeners_by_port(proxy, snapshot)["inbound:9080"]).http_filters)[:-3]
    types: dict[str, type[Any]] = {
        names.RBAC_FILTER: HttpRBAC,
        names.EXT_AUTHZ_FILTER: ExtAuthz,
        authz_filters.MIXER_EXT_AUTHZ_FILTER: ExtAuthz,
    }
    return [(f.name, unpack(types[f.name](), f.typed_config)) for f in filters]


# ------------------------------------------------------------------------------------------------ the filter


def test_http_provider_every_field(make_meta: MakeMeta) -> None:
    provider = ExtAuthzHttpProvider(
        name="http",
        service=AUTHZ_HOST,
        port=8000,
        timeout=0.25,
        fail_open=True,
        status_on_error=503,
        request_body=ExtAuthzRequestBody(max_request_bytes=4096, allow_partial_message=True, pack_as_bytes=True),
        path_prefix="/check",
        request_headers=("x-ext-authz", "x-user-*", "*-token"),
        additional_headers=(("x-a", "1"), ("x-b", "%REQ(:path)%")),
        headers_to_upstream_on_allow=("x-ext-authz-check-result",),
        headers_to_downstream_on_deny=("content-type", "x-deny-*"),
        headers_to_downstream_on_allow=("set-cookie",),
    )
    config = provider_ext_authz("http", mesh(make_meta, providers=(provider,)))
    assert config.http_service.server_uri == HttpUri(
        uri=f"http://{AUTHZ_HOST}", cluster=HTTP_CLUSTER, timeout=timedelta(milliseconds=250)
    )
    assert config.http_service.path_prefix == "/check"
    assert config.http_service.authorization_request == AuthorizationRequest(
        headers_to_add=[HeaderValue(key="x-a", value="1"), HeaderValue(key="x-b", value="%REQ(:path)%")]
    )
    assert config.http_service.authorization_response == AuthorizationResponse(
        allowed_upstream_headers=ListStringMatcher(
            patterns=[StringMatcher(exact="x-ext-authz-check-result", ignore_case=True)]
        ),
        allowed_client_headers=ListStringMatcher(
            patterns=[
                StringMatcher(exact="content-type", ignore_case=True),
                StringMatcher(prefix="x-deny-", ignore_case=True),
            ]
        ),
        allowed_client_headers_on_success=ListStringMatcher(
            patterns=[StringMatcher(exact="set-cookie", ignore_case=True)]
        ),
    )
    assert config.allowed_headers == ListStringMatcher(
        patterns=[
            StringMatcher(exact="x-ext-authz", ignore_case=True),
            StringMatcher(prefix="x-user-", ignore_case=True),
            StringMatcher(suffix="-token", ignore_case=True),
        ]
    )
    assert config.failure_mode_allow is True
    assert config.status_on_error == HttpStatus(code=StatusCode.ServiceUnavailable)
    assert config.with_request_body == BufferSettings(
        max_request_bytes=4096, allow_partial_message=True, pack_as_bytes=True
    )
    assert config.transport_api_version == ApiVersion.V3
    assert config.filter_enabled_metadata == custom_rules_matched()
    assert not config.HasField("grpc_service")


def test_http_provider_defaults(make_meta: MakeMeta) -> None:
    """Istio's docs' provider: 10m timeout, no status_on_error (Envoy's 403), no response or body settings."""
    config = provider_ext_authz("http", mesh(make_meta))
    assert config == ExtAuthz(
        http_service=HttpService(
            server_uri=HttpUri(uri=f"http://{AUTHZ_HOST}", cluster=HTTP_CLUSTER, timeout=timedelta(minutes=10))
        ),
        transport_api_version=ApiVersion.V3,
        filter_enabled_metadata=custom_rules_matched(),
    )


def test_grpc_provider_every_field(make_meta: MakeMeta) -> None:
    provider = ExtAuthzGrpcProvider(
        name="grpc",
        service=f"foo/{AUTHZ_HOST}",
        port=9000,
        timeout=1.5,
        fail_open=True,
        status_on_error=500,
        request_body=ExtAuthzRequestBody(max_request_bytes=10),
    )
    config = provider_ext_authz("grpc", mesh(make_meta, providers=(provider,)))
    assert config == ExtAuthz(
        grpc_service=GrpcService(
            envoy_grpc=GrpcService.EnvoyGrpc(cluster_name=GRPC_CLUSTER, authority=f"outbound_.9000_._.{AUTHZ_HOST}"),
            timeout=timedelta(seconds=1.5),
        ),
        transport_api_version=ApiVersion.V3,
        failure_mode_allow=True,
        status_on_error=HttpStatus(code=StatusCode.InternalServerError),
        with_request_body=BufferSettings(max_request_bytes=10),
        filter_enabled_metadata=custom_rules_matched(),
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (("x-a",), [StringMatcher(exact="x-a", ignore_case=True)]),
        (("x-*",), [StringMatcher(prefix="x-", ignore_case=True)]),
        (("*-id",), [StringMatcher(suffix="-id", ignore_case=True)]),
    ],
    ids=["exact", "prefix", "suffix"],
)
def test_header_patterns(headers: tuple[str, ...], expected: list[StringMatcher]) -> None:
    assert header_matchers(headers) == ListStringMatcher(patterns=expected)


@pytest.mark.parametrize(
    ("provider", "name", "reason"),
    [
        (HTTP, "nope", "extension provider nope not found, available providers are ['http']"),
        (
            ExtAuthzHttpProvider(name="http", service="other.foo.svc.cluster.local", port=8000),
            "http",
            "could not find service other.foo.svc.cluster.local in the service registry",
        ),
        (
            ExtAuthzGrpcProvider(name="grpc", service=f"bar/{AUTHZ_HOST}", port=9000),
            "grpc",
            f"could not find service {AUTHZ_HOST} in namespace bar in the service registry",
        ),
        (
            ExtAuthzHttpProvider(name="http", service=AUTHZ_HOST, port=8080),
            "http",
            f"service {AUTHZ_HOST} has no port 8080",
        ),
    ],
    ids=["unknown-provider", "unknown-service", "wrong-namespace", "unknown-port"],
)
def test_unusable_provider(make_meta: MakeMeta, provider: ExtensionProvider, name: str, reason: str) -> None:
    with pytest.raises(LookupError) as raised:
        provider_ext_authz(name, mesh(make_meta, providers=(provider,)))
    assert str(raised.value) == reason


# ------------------------------------------------------------------------------------------------ on the chain


def test_custom_policy_calls_its_provider(make_meta: MakeMeta) -> None:
    snapshot = mesh(make_meta, custom(make_meta, "ext-authz", "http"))
    [(shadow_name, shadow), (ext_name, ext)] = http_filters(sidecar(snapshot, "app", ADDRESS), snapshot)
    assert (shadow_name, ext_name) == (names.RBAC_FILTER, names.EXT_AUTHZ_FILTER)
    assert list(shadow.shadow_rules.policies) == ["istio-ext-authz-ns[default]-policy[ext-authz]-rule[0]"]
    assert shadow.shadow_rules_stat_prefix == "istio_ext_authz_"
    assert ext == provider_ext_authz("http", snapshot)


BAD = "istio-ext-authz-ns[default]-policy[{}]-rule[0]-deny-due-to-bad-CUSTOM-action"


@pytest.mark.parametrize(
    ("policies", "denied", "reason"),
    [
        (("a:opa",), [BAD.format("a")], "extension provider opa not found"),
        (("a:http", "b:grpc"), [BAD.format("a"), BAD.format("b")], "only 1 provider can be used per workload"),
        (("a:http", "b:mixer"), [BAD.format("a"), BAD.format("b")], "only 1 provider can be used per workload"),
    ],
    ids=["provider-not-in-mesh-config", "two-providers", "a-provider-and-mixer"],
)
def test_unusable_provider_fails_closed(
    make_meta: MakeMeta, policies: tuple[str, ...], denied: list[str], reason: str
) -> None:
    """What the CUSTOM rules would send to the provider is denied, with a warning naming why (once per proxy)."""
    snapshot = mesh(make_meta, *(custom(make_meta, *p.split(":")) for p in policies))
    proxy = sidecar(snapshot, "app", ADDRESS, MIXER)
    with structlog.testing.capture_logs() as logs:
        [(name, config)] = http_filters(proxy, snapshot)
        http_filters(proxy, snapshot)
    assert name == names.RBAC_FILTER
    assert sorted(config.rules.policies) == denied
    assert config.rules.action == config.rules.DENY
    [warning] = [e for e in logs if e.get("reason") == "unusable CUSTOM provider"]
    assert warning["event"] == "mixer_checks_fail_closed"
    assert reason in warning["detail"]


def test_mixer_policies_beside_a_provider(make_meta: MakeMeta) -> None:
    """The provider's ext_authz for the CUSTOM rules, then Mixer's for every request, under its own name."""
    access_list = AccessList(
        meta=make_meta("AccessList", "list"),
        selector=MappingProxyType({"app": "app"}),
        value="source.workload.name",
        entries=("bad",),
        mode="deny",
        fail_open=True,
    )
    snapshot = mesh(make_meta, custom(make_meta, "ext-authz", "grpc"), access_list)
    filters = http_filters(sidecar(snapshot, "app", ADDRESS, MIXER), snapshot)
    assert [name for name, _ in filters] == [
        names.RBAC_FILTER,
        names.EXT_AUTHZ_FILTER,
        authz_filters.MIXER_EXT_AUTHZ_FILTER,
    ]
    assert filters[1][1] == provider_ext_authz("grpc", snapshot)
    mixer = filters[2][1]
    assert mixer == authz_filters.build_ext_authz(fail_open=True, every_request=True)


@pytest.mark.parametrize("provider", ["http", "grpc"])
def test_envoy_accepts_a_sidecar_calling_a_provider(tmp_path: Path, make_meta: MakeMeta, provider: str) -> None:
    access_list = AccessList(
        meta=make_meta("AccessList", "list"),
        selector=MappingProxyType({"app": "app"}),
        value="source.workload.name",
        entries=("bad",),
        mode="deny",
    )
    full_http = ExtAuthzHttpProvider(
        name="http",
        service=AUTHZ_HOST,
        port=8000,
        status_on_error=503,
        request_body=ExtAuthzRequestBody(max_request_bytes=4096),
        path_prefix="/check",
        request_headers=("x-ext-authz", "x-user-*"),
        additional_headers=(("x-a", "1"),),
        headers_to_upstream_on_allow=("x-ext-authz-check-result",),
        headers_to_downstream_on_deny=("content-type",),
        headers_to_downstream_on_allow=("set-cookie",),
    )
    snapshot = mesh(make_meta, custom(make_meta, "ext-authz", provider), access_list, providers=(full_http, GRPC))
    proxy = sidecar(snapshot, "app", ADDRESS, MIXER)
    built_listeners = listeners.build_listeners(proxy, snapshot)
    built_clusters = [
        *(c for s in clusters.cluster_scopes(proxy) for c in clusters.build_scope_clusters(s, snapshot)),
        *clusters.build_inbound_clusters(proxy, snapshot),
    ]
    assert {HTTP_CLUSTER, GRPC_CLUSTER} <= {c.name for c in built_clusters}
    tables = generated_type(ROUTE_TYPE, proxy, snapshot)
    check_resources(clusters=built_clusters, listeners=built_listeners, routes=tables)
    bootstrap = build_sidecar_bootstrap(workload="app", address=ADDRESS, mixer="127.0.0.1:9091")
    assignments = [
        *(a for s in endpoints.endpoint_scopes(proxy) for a in endpoints.build_scope_load_assignments(s, snapshot)),
        *endpoints.build_proxy_load_assignments(proxy, snapshot),
    ]
    envoy_validate(tmp_path, built_clusters, built_listeners, tables, assignments, bootstrap=bootstrap)


# ------------------------------------------------------------------------------------------------ on TCP ports

PORT_RULE = AuthorizationRule(operations=(AuthorizationOperation(ports=(15432,)),))


def tcp_mesh(make_meta: MakeMeta, provider: str) -> MeshSnapshot:
    """The mesh above, workload ``app`` also serving db (TCP 5432 -> 15432), a CUSTOM policy on that port."""
    policy = AuthorizationPolicy(
        meta=make_meta("AuthorizationPolicy", "tcp-ext-authz"),
        selector=MappingProxyType({"app": "app"}),
        action="CUSTOM",
        provider=provider,
        rules=(PORT_RULE,),
    )
    return mesh(make_meta, inbound_service(make_meta, "db", 5432, Protocol.TCP, 15432, app="app"), policy)


def tcp_filters(proxy: Proxy, snapshot: MeshSnapshot) -> list[tuple[str, Any]]:
    """(name, unpacked config) of the db port's network filters before tcp_proxy."""
    [chain] = listeners_by_port(proxy, snapshot)["inbound:5432"].filter_chains
    types: dict[str, type[Any]] = {
        names.RBAC_NETWORK_FILTER: NetworkRBAC,
        names.EXT_AUTHZ_NETWORK_FILTER: NetworkExtAuthz,
    }
    return [(f.name, unpack(types[f.name](), f.typed_config)) for f in chain.filters[:-1]]


def test_grpc_provider_checks_tcp_connections(make_meta: MakeMeta) -> None:
    """Istio's TCP CUSTOM: a shadow network RBAC of the rules, then the network ext_authz gated on its result."""
    snapshot = tcp_mesh(make_meta, "grpc")
    [(shadow_name, shadow), (ext_name, ext)] = tcp_filters(sidecar(snapshot, "app", ADDRESS), snapshot)
    assert (shadow_name, ext_name) == (names.RBAC_NETWORK_FILTER, names.EXT_AUTHZ_NETWORK_FILTER)
    assert list(shadow.shadow_rules.policies) == ["istio-ext-authz-ns[default]-policy[tcp-ext-authz]-rule[0]"]
    assert shadow.shadow_rules.action == shadow.shadow_rules.DENY
    assert not shadow.HasField("rules")
    assert (shadow.stat_prefix, shadow.shadow_rules_stat_prefix) == ("tcp.", "istio_ext_authz_")
    [permission] = shadow.shadow_rules.policies["istio-ext-authz-ns[default]-policy[tcp-ext-authz]-rule[0]"].permissions
    # the policy's workload port 15432 is the service port 5432 on this chain
    [port] = permission.and_rules.rules[0].or_rules.rules
    assert port == Permission(destination_port=5432)
    assert ext == NetworkExtAuthz(
        stat_prefix="tcp.",
        grpc_service=GrpcService(
            envoy_grpc=GrpcService.EnvoyGrpc(cluster_name=GRPC_CLUSTER, authority=GRPC_CLUSTER.replace("|", "_.")),
            timeout=timedelta(minutes=10),
        ),
        failure_mode_allow=False,
        transport_api_version=ApiVersion.V3,
        filter_enabled_metadata=custom_rules_matched(names.RBAC_NETWORK_FILTER),
    )
    assert ext.filter_enabled_metadata.filter == "envoy.filters.network.rbac"


def test_http_provider_on_tcp_denies_what_it_would_check(make_meta: MakeMeta) -> None:
    """Istio skips the check (an HTTP authorizer cannot check a connection); meshplane denies, with a warning."""
    snapshot = tcp_mesh(make_meta, "http")
    with structlog.testing.capture_logs() as logs:
        [(name, config)] = tcp_filters(sidecar(snapshot, "app", ADDRESS), snapshot)
    assert name == names.RBAC_NETWORK_FILTER
    assert sorted(config.rules.policies) == [BAD.format("tcp-ext-authz")]
    assert config.rules.action == config.rules.DENY
    [warning] = [e for e in logs if e.get("reason") == "unusable CUSTOM provider on TCP"]
    assert "envoyExtAuthzHttp provider: it cannot check TCP traffic" in warning["detail"]


def test_envoy_accepts_a_tcp_port_calling_a_grpc_provider(tmp_path: Path, make_meta: MakeMeta) -> None:
    snapshot = tcp_mesh(make_meta, "grpc")
    proxy = sidecar(snapshot, "app", ADDRESS)
    built_listeners = listeners.build_listeners(proxy, snapshot)
    built_clusters = [
        *(c for s in clusters.cluster_scopes(proxy) for c in clusters.build_scope_clusters(s, snapshot)),
        *clusters.build_inbound_clusters(proxy, snapshot),
    ]
    tables = generated_type(ROUTE_TYPE, proxy, snapshot)
    assignments = [
        *(a for s in endpoints.endpoint_scopes(proxy) for a in endpoints.build_scope_load_assignments(s, snapshot)),
        *endpoints.build_proxy_load_assignments(proxy, snapshot),
    ]
    check_resources(clusters=built_clusters, listeners=built_listeners, routes=tables)
    envoy_validate(tmp_path, built_clusters, built_listeners, tables, assignments)
