"""RequestAuthentication -> ``envoy.filters.http.jwt_authn`` on inbound HTTP ports, field by field (Istio's
``convertToEnvoyJwtConfig``): providers, the allow-missing requirement for one and several issuers, the JWKS
source (inline, or fetched by Envoy through the outbound cluster, failing closed without one), the filter's place
before RBAC, which workloads get it, and real ``envoy --mode validate`` over a sidecar with it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from envoy.extensions.filters.http.jwt_authn.v3.config_pb2 import (
    JwtAuthentication,
    JwtClaimToHeader,
    JwtHeader,
    JwtRequirement,
    JwtRequirementAndList,
    JwtRequirementOrList,
)
from envoy.extensions.filters.http.rbac.v3.rbac_pb2 import RBAC as HttpRBAC
from google.protobuf.empty_pb2 import Empty

from e2e.jwt_tokens import signing_key
from envoy_bootstrap.bootstrap import build_sidecar_bootstrap
from meshplane import names
from pilot.config.parse import parse_config_text
from pilot.generate import clusters, endpoints, jwt_authn, listeners
from pilot.generate.registry import ROUTE_TYPE
from pilot.model import MeshSnapshot, Proxy, build_snapshot
from tests.sidecar_builders import listeners_by_port, only_hcm, sidecar, unpack
from tests.source_builders import generated_type
from tests.xdstest import check_resources, envoy_validate

ADDRESS = "127.0.0.21"
JWKS_HOST = "jwks.default.svc.cluster.local"
MESH = f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: httpbin}}
spec:
  hosts: [httpbin.default.svc.cluster.local]
  ports: [{{number: 8000, name: http, protocol: HTTP, targetPort: 18000}}, {{number: 5432, name: db, protocol: TCP}}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {{labels: {{app: httpbin}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: httpbin}}
spec: {{address: {ADDRESS}, labels: {{app: httpbin}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: sleep}}
spec: {{address: 127.0.0.22, labels: {{app: sleep}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: jwks}}
spec:
  hosts: [{JWKS_HOST}]
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints: [{{address: 127.0.0.40}}]
"""


def snapshot_with(*documents: str) -> MeshSnapshot:
    parsed = parse_config_text("\n---\n".join([MESH, *documents]), "mesh.yaml")
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    return build_snapshot({r.meta.key: r for r in parsed.resources}, version=1)


def request_authentication(rules: str, *, name: str = "jwt", namespace: str = "default", selector: str = "") -> str:
    return (
        f"apiVersion: security.istio.io/v1\nkind: RequestAuthentication\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{selector}  jwtRules:\n{rules}"
    )


def inline_rule(issuer: str, extra: str = "") -> str:
    return f"  - issuer: {issuer}\n    jwks: '{signing_key('generate').jwks}'\n{extra}"


def selects(app: str) -> str:
    return f"  selector: {{matchLabels: {{app: {app}}}}}\n"


def httpbin(snapshot: MeshSnapshot) -> Proxy:
    return sidecar(snapshot, "httpbin", ADDRESS)


def config_of(snapshot: MeshSnapshot, proxy: Proxy | None = None) -> JwtAuthentication:
    config = jwt_authn.build_jwt_authentication(proxy or httpbin(snapshot), snapshot)
    assert config is not None
    return config


def any_of(*requirements: JwtRequirement) -> JwtRequirement:
    return JwtRequirement(requires_any=JwtRequirementOrList(requirements=list(requirements)))


def provider_or_missing(name: str) -> JwtRequirement:
    return any_of(JwtRequirement(provider_name=name), JwtRequirement(allow_missing=Empty()))


def test_a_provider_carries_every_field_of_its_rule() -> None:
    snapshot = snapshot_with(
        request_authentication(
            inline_rule(
                "testing@secure.istio.io",
                "    audiences: [bookinfo, httpbin]\n"
                "    fromHeaders: [{name: x-jwt-assertion, prefix: 'Bearer '}, {name: x-token}]\n"
                "    fromParams: [my_token]\n"
                "    fromCookies: [session]\n"
                "    outputPayloadToHeader: x-jwt-payload\n"
                "    outputClaimToHeaders: [{header: x-jwt-group, claim: groups}, {header: x-n, claim: nested.key1}]\n"
                "    forwardOriginalToken: true\n"
                "    spaceDelimitedClaims: [roles, scope]\n",
            )
        )
    )
    provider = config_of(snapshot).providers["origins-0"]

    assert provider.issuer == "testing@secure.istio.io"
    assert list(provider.audiences) == ["bookinfo", "httpbin"]
    assert list(provider.from_headers) == [
        JwtHeader(name="x-jwt-assertion", value_prefix="Bearer "),
        JwtHeader(name="x-token", value_prefix=""),
    ]
    assert list(provider.from_params) == ["my_token"]
    assert list(provider.from_cookies) == ["session"]
    assert provider.forward_payload_header == "x-jwt-payload"
    assert list(provider.claim_to_headers) == [
        JwtClaimToHeader(header_name="x-jwt-group", claim_name="groups"),
        JwtClaimToHeader(header_name="x-n", claim_name="nested.key1"),
    ]
    assert provider.forward is True
    assert provider.payload_in_metadata == "payload"  # what RBAC matches requestPrincipals and claims on
    assert list(provider.normalize_payload_in_metadata.space_delimited_claims) == ["permission", "roles", "scope"]
    assert provider.local_jwks.inline_string == signing_key("generate").jwks
    assert not provider.HasField("remote_jwks")


def test_defaults_leave_envoy_s_token_locations_and_drop_the_token() -> None:
    provider = config_of(snapshot_with(request_authentication(inline_rule("iss")))).providers["origins-0"]
    assert (list(provider.from_headers), list(provider.from_params), list(provider.from_cookies)) == ([], [], [])
    assert (provider.forward, provider.forward_payload_header, list(provider.audiences)) == (False, "", [])
    assert list(provider.normalize_payload_in_metadata.space_delimited_claims) == ["permission", "scope"]


def test_one_issuer_requires_its_token_or_none() -> None:
    config = config_of(snapshot_with(request_authentication(inline_rule("iss"))))
    [rule] = config.rules
    assert rule.match.prefix == "/"
    assert rule.requires == provider_or_missing("origins-0")
    assert config.bypass_cors_preflight is True


def test_several_issuers_sorted_by_issuer_from_every_selecting_policy() -> None:
    """Istio merges the rules of every RequestAuthentication selecting the workload (mesh-wide ones from the root
    namespace too), sorted by issuer; a token must verify with its provider, and none is still allowed."""
    snapshot = snapshot_with(
        request_authentication(inline_rule("zeta"), name="ns-wide"),
        request_authentication(inline_rule("alpha"), name="mesh-wide", namespace="istio-system"),
        request_authentication(inline_rule("mid"), name="only-httpbin", selector=selects("httpbin")),
        request_authentication(inline_rule("never"), name="only-sleep", selector=selects("sleep")),
        request_authentication(inline_rule("elsewhere"), name="other-ns", namespace="other"),
    )  # fmt: skip
    config = config_of(snapshot)

    assert [config.providers[f"origins-{i}"].issuer for i in range(len(config.providers))] == ["alpha", "mid", "zeta"]
    names_ = ["origins-0", "origins-1", "origins-2"]
    assert config.rules[0].requires == any_of(
        *(JwtRequirement(provider_name=name) for name in names_),
        JwtRequirement(requires_all=JwtRequirementAndList(requirements=[provider_or_missing(n) for n in names_])),
    )


def test_jwks_uri_is_fetched_by_envoy_through_the_outbound_cluster() -> None:
    snapshot = snapshot_with(
        request_authentication(
            f"  - issuer: iss\n    jwksUri: http://{JWKS_HOST}:8080/jwks.json\n    timeout: 2500ms\n"
            f"  - issuer: iss-default-timeout\n    jwksUri: http://{JWKS_HOST}:8080/other.json\n"
        )
    )
    providers = config_of(snapshot).providers
    remote = providers["origins-0"].remote_jwks
    assert remote.http_uri.uri == f"http://{JWKS_HOST}:8080/jwks.json"
    assert remote.http_uri.cluster == names.outbound_cluster_name(8080, "", JWKS_HOST)
    assert remote.http_uri.timeout.ToTimedelta() == timedelta(milliseconds=2500)
    assert remote.cache_duration.ToTimedelta() == timedelta(minutes=5)
    assert not providers["origins-0"].HasField("local_jwks")
    assert providers["origins-1"].remote_jwks.http_uri.timeout.ToTimedelta() == timedelta(seconds=5)  # Istio's


@pytest.mark.parametrize(
    "uri",
    [
        "http://unknown.example.com/jwks.json",
        f"http://{JWKS_HOST}/jwks.json",  # port 80, which the service does not have
        f"https://{JWKS_HOST}:9999/jwks.json",
    ],
    ids=["unknown-host", "default-port-not-served", "port-not-served"],
)
def test_jwks_uri_without_a_cluster_fails_closed_and_says_why(uri: str) -> None:
    snapshot = snapshot_with(request_authentication(f"  - issuer: iss\n    jwksUri: {uri}\n"))
    jwt_authn._warned.clear()
    with structlog.testing.capture_logs() as logs:
        config = config_of(snapshot)
        config_of(snapshot)  # logged once per proxy
    remote = config.providers["origins-0"].remote_jwks
    assert remote.http_uri.uri == uri
    assert remote.http_uri.cluster == names.BLACKHOLE_CLUSTER  # tokens of this issuer are rejected: no keys
    assert config.rules[0].requires == provider_or_missing("origins-0")  # no token: left to AuthorizationPolicy
    errors = [entry for entry in logs if entry["event"] == "jwks_uri_has_no_cluster"]
    assert len(errors) == 1 and errors[0]["jwks_uri"] == uri and "add a ServiceEntry" in errors[0]["detail"]


def test_jwt_authn_runs_before_rbac_on_http_ports_only() -> None:
    snapshot = snapshot_with(
        request_authentication(inline_rule("iss")),
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: require-jwt}\n"
        "spec:\n  rules:\n  - from: [{source: {requestPrincipals: ['*']}}]\n",
    )
    by_port = listeners_by_port(httpbin(snapshot), snapshot)
    hcm = only_hcm(by_port["inbound:8000"])
    filter_names = [f.name for f in hcm.http_filters]
    assert filter_names == [
        "envoy.filters.http.jwt_authn",
        names.RBAC_FILTER,
        names.FAULT_FILTER,
        names.CORS_FILTER,
        names.ROUTER_FILTER,
    ]
    assert unpack(JwtAuthentication(), hcm.http_filters[0].typed_config) == config_of(snapshot)
    rbac = unpack(HttpRBAC(), hcm.http_filters[1].typed_config)
    [policy] = rbac.rules.policies.values()
    metadata = policy.principals[0].and_ids.ids[0].or_ids.ids[0].and_ids.ids[0].sourced_metadata.metadata_matcher
    assert (metadata.filter, [p.key for p in metadata.path]) == ("envoy.filters.http.jwt_authn", ["payload", "iss"])
    tcp_chain_filters = [f.name for c in by_port["inbound:5432"].filter_chains for f in c.filters]
    assert "envoy.filters.http.jwt_authn" not in str(tcp_chain_filters)


def test_workloads_not_selected_and_proxies_without_a_workload_get_no_filter() -> None:
    snapshot = snapshot_with(request_authentication(inline_rule("iss"), selector=selects("sleep")))
    assert jwt_authn.build_jwt_authentication(httpbin(snapshot), snapshot) is None
    assert jwt_authn.build_jwt_authn_filters(sidecar(snapshot, "nobody", "127.0.0.99"), snapshot) == []
    hcm = only_hcm(listeners_by_port(httpbin(snapshot), snapshot)["inbound:8000"])
    assert "envoy.filters.http.jwt_authn" not in [f.name for f in hcm.http_filters]


def test_envoy_accepts_a_sidecar_with_jwt_authn_and_jwt_rbac(tmp_path: Path) -> None:
    snapshot = snapshot_with(
        request_authentication(
            inline_rule("testing@secure.istio.io", "    outputClaimToHeaders: [{header: x-jwt-group, claim: groups}]\n")
            + f"  - issuer: remote\n    jwksUri: http://{JWKS_HOST}:8080/jwks.json\n"
            + "  - issuer: nowhere\n    jwksUri: https://nowhere.example.com/jwks.json\n"
        ),
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: require-jwt}\nspec:\n"
        "  rules:\n  - from: [{source: {requestPrincipals: ['testing@secure.istio.io/*'], serviceAccounts: [sleep]}}]\n"
        "    when:\n    - {key: 'request.auth.claims[groups]', values: [group1]}\n"
        "    - {key: request.auth.audiences, values: [aud]}\n    - {key: request.auth.presenter, values: ['*']}\n",
    )
    proxy = httpbin(snapshot)
    built_listeners = listeners.build_listeners(proxy, snapshot)
    built_clusters = [
        *(c for s in clusters.cluster_scopes(proxy) for c in clusters.build_scope_clusters(s, snapshot)),
        *clusters.build_inbound_clusters(proxy, snapshot),
    ]
    tables = generated_type(ROUTE_TYPE, proxy, snapshot)
    check_resources(clusters=built_clusters, listeners=built_listeners, routes=tables)
    assignments = [
        *(a for s in endpoints.endpoint_scopes(proxy) for a in endpoints.build_scope_load_assignments(s, snapshot)),
        *endpoints.build_proxy_load_assignments(proxy, snapshot),
    ]
    bootstrap = build_sidecar_bootstrap(workload="httpbin", address=ADDRESS)
    envoy_validate(tmp_path, built_clusters, built_listeners, tables, assignments, bootstrap=bootstrap)
