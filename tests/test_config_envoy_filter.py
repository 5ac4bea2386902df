"""EnvoyFilter: Istio's validation (``ValidateEnvoyFilter``) into frozen dataclasses, patch values parsed into the
Envoy v3 messages (an unknown field or type is rejected with its line and path), the operations Istio would ignore
and the parts meshplane does not do rejected."""

from __future__ import annotations

import textwrap

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster

from pilot.config.envoy_filter_values import patch_message
from pilot.config.parse import parse_config_text
from pilot.config.types import (
    EnvoyFilter,
    EnvoyFilterApplyTo,
    EnvoyFilterClusterMatch,
    EnvoyFilterContext,
    EnvoyFilterFilterChainMatch,
    EnvoyFilterListenerMatch,
    EnvoyFilterOperation,
    EnvoyFilterProxyMatch,
    EnvoyFilterRouteMatch,
)

HEADER_LINES = 6


def document(body: str, api_version: str = "networking.istio.io/v1alpha3") -> str:
    spec = textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
    return f"apiVersion: {api_version}\nkind: EnvoyFilter\nmetadata:\n  name: r\n  namespace: ns\nspec:\n{spec}\n"


def accepted(body: str) -> EnvoyFilter:
    parsed = parse_config_text(document(body), "test.yaml")
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    [resource] = parsed.resources
    assert isinstance(resource, EnvoyFilter)
    return resource


def errors(body: str, api_version: str = "networking.istio.io/v1alpha3") -> list[str]:
    parsed = parse_config_text(document(body, api_version), "test.yaml")
    assert not parsed.resources, parsed.resources
    return [str(e) for r in parsed.rejected for e in r.errors]


def test_every_match_is_read_field_by_field() -> None:
    ef = accepted(
        """
        workloadSelector: {labels: {app: reviews}}
        priority: -5
        configPatches:
        - applyTo: HTTP_FILTER
          match:
            context: SIDECAR_INBOUND
            proxy: {proxyVersion: '^1\\.2', metadata: {B: "2", A: "1"}}
            listener:
              portNumber: 8080
              name: virtualInbound
              filterChain:
                name: c
                sni: a.example.com
                transportProtocol: tls
                applicationProtocols: "h2, http/1.1"
                destinationPort: 8080
                filter:
                  name: envoy.filters.network.http_connection_manager
                  subFilter: {name: envoy.filters.http.router}
          patch: {operation: REMOVE}
        - applyTo: HTTP_ROUTE
          match:
            routeConfiguration:
              portNumber: 443
              portName: https
              gateway: ns/gw
              name: https.443.https.gw.ns
              vhost: {name: v, domainName: a.example.com, route: {name: default, action: ROUTE}}
          patch: {operation: MERGE, value: {name: renamed}}
        - applyTo: CLUSTER
          match:
            context: SIDECAR_OUTBOUND
            cluster: {portNumber: 9080, service: a.ns.svc.cluster.local, subset: v1, name: nn}
          patch: {operation: MERGE, value: {connect_timeout: 1.5s}}
        """
    )
    assert ef.workload_selector == {"app": "reviews"}
    assert ef.priority == -5
    first, second, third = ef.config_patches
    assert (first.apply_to, first.operation, first.value) == (
        EnvoyFilterApplyTo.HTTP_FILTER,
        EnvoyFilterOperation.REMOVE,
        b"",
    )
    assert first.context is EnvoyFilterContext.SIDECAR_INBOUND
    assert first.proxy == EnvoyFilterProxyMatch(proxy_version="^1\\.2", metadata=(("A", "1"), ("B", "2")))
    assert first.listener == EnvoyFilterListenerMatch(
        port_number=8080,
        name="virtualInbound",
        filter_chain=EnvoyFilterFilterChainMatch(
            name="c",
            sni="a.example.com",
            transport_protocol="tls",
            application_protocols=("h2", "http/1.1"),
            destination_port=8080,
            filter_name="envoy.filters.network.http_connection_manager",
            sub_filter_name="envoy.filters.http.router",
        ),
    )
    assert second.route_configuration == EnvoyFilterRouteMatch(
        port_number=443,
        port_name="https",
        gateway="ns/gw",
        name="https.443.https.gw.ns",
        vhost_name="v",
        vhost_domain_name="a.example.com",
        route_name="default",
        route_action="ROUTE",
    )
    assert third.cluster == EnvoyFilterClusterMatch(
        port_number=9080, service="a.ns.svc.cluster.local", subset="v1", name="nn"
    )
    cluster = patch_message(EnvoyFilterApplyTo.CLUSTER, third.value)
    assert isinstance(cluster, Cluster)
    assert (cluster.connect_timeout.seconds, cluster.connect_timeout.nanos) == (1, 500_000_000)
    assert ef.meta.content_hash  # bytes are hashed too


def test_only_v1alpha3_is_istio_s_api_version() -> None:
    [error] = errors("configPatches: [{applyTo: CLUSTER, patch: {operation: REMOVE}}]", "networking.istio.io/v1")
    assert "apiVersion" in error and "networking.istio.io/v1alpha3" in error


REJECTIONS = [
    ("no-patches", "priority: 1", 6, "spec.configPatches", "required: one or more patches"),
    (
        "no-apply-to",
        "configPatches: [{patch: {operation: REMOVE}}]",
        7,
        "spec.configPatches[0].applyTo",
        "missing applyTo",
    ),
    (
        "listener-filter",
        "configPatches: [{applyTo: LISTENER_FILTER, patch: {operation: REMOVE}}]",
        7,
        "spec.configPatches[0].applyTo",
        "LISTENER_FILTER: not supported by meshplane yet",
    ),
    (
        "extension-config",
        "configPatches: [{applyTo: EXTENSION_CONFIG, patch: {operation: REMOVE}}]",
        7,
        "spec.configPatches[0].applyTo",
        "EXTENSION_CONFIG: not supported by meshplane yet",
    ),
    (
        "bootstrap",
        "configPatches: [{applyTo: BOOTSTRAP, patch: {operation: MERGE, value: {}}}]",
        7,
        "spec.configPatches[0].applyTo",
        "BOOTSTRAP: not supported by meshplane yet",
    ),
    (
        "no-operation",
        "configPatches: [{applyTo: CLUSTER, patch: {value: {}}}]",
        7,
        "spec.configPatches[0].patch.operation",
        "missing patch operation",
    ),
    (
        "no-value",
        "configPatches: [{applyTo: CLUSTER, patch: {operation: MERGE}}]",
        7,
        "spec.configPatches[0].patch.value",
        "missing patch value",
    ),
    (
        "remove-with-value",
        "configPatches: [{applyTo: CLUSTER, patch: {operation: REMOVE, value: {name: x}}}]",
        7,
        "spec.configPatches[0].patch.value",
        "REMOVE takes no value",
    ),
    (
        "ignored-operation",
        "configPatches: [{applyTo: ROUTE_CONFIGURATION, patch: {operation: ADD, value: {}}}]",
        7,
        "spec.configPatches[0].patch.operation",
        "ADD has no effect on applyTo ROUTE_CONFIGURATION (Istio ignores it",
    ),
    (
        "insert-on-cluster",
        "configPatches: [{applyTo: CLUSTER, patch: {operation: INSERT_FIRST, value: {}}}]",
        7,
        "spec.configPatches[0].patch.operation",
        "INSERT_FIRST has no effect on applyTo CLUSTER",
    ),
    (
        "unknown-field",
        "configPatches:\n- applyTo: CLUSTER\n  patch:\n    operation: MERGE\n    value: {conect_timeout: 1s}",
        11,
        "spec.configPatches[0].patch.value",
        'has no field named "conect_timeout"',
    ),
    (
        "v2-type",
        "configPatches:\n- applyTo: HTTP_FILTER\n  patch:\n    operation: ADD\n    value:\n      name: envoy.lua\n"
        "      typed_config: {'@type': type.googleapis.com/envoy.config.filter.http.lua.v2.Lua}",
        11,
        "spec.configPatches[0].patch.value",
        "referenced type unknown (hint: try using the v3 xDS API)",
    ),
    (
        "unknown-type",
        "configPatches:\n- applyTo: HTTP_FILTER\n  patch:\n    operation: ADD\n    value:\n      name: x\n"
        "      typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.nope.v3.Nope}",
        11,
        "spec.configPatches[0].patch.value",
        "referenced type unknown: type.googleapis.com/envoy.extensions.filters.http.nope.v3.Nope",
    ),
    (
        "field-of-typed-config",
        "configPatches:\n- applyTo: HTTP_FILTER\n  patch:\n    operation: ADD\n    value:\n      name: x\n"
        "      typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua, code: x}",
        11,
        "spec.configPatches[0].patch.value",
        'has no field named "code" at "HttpFilter.typed_config"',
    ),
    (
        "wrong-value-type",
        "configPatches: [{applyTo: CLUSTER, patch: {operation: MERGE, value: {connect_timeout: 5}}}]",
        7,
        "spec.configPatches[0].patch.value",
        "not a valid envoy.config.cluster.v3.Cluster",
    ),
    (
        "filter-class",
        "configPatches: [{applyTo: HTTP_FILTER, patch: {operation: ADD, filterClass: AUTHZ, value: {name: x}}}]",
        7,
        "spec.configPatches[0].patch.filterClass",
        "not supported by meshplane yet",
    ),
    (
        "bad-regex",
        "configPatches: [{applyTo: CLUSTER, match: {proxy: {proxyVersion: '(1'}}, patch: {operation: REMOVE}}]",
        7,
        "spec.configPatches[0].match.proxy.proxyVersion",
        "invalid regex for proxy version",
    ),
    (
        "cluster-match-on-listener",
        "configPatches: [{applyTo: LISTENER, match: {cluster: {name: x}}, patch: {operation: REMOVE}}]",
        7,
        "spec.configPatches[0].match.cluster",
        "applyTo for listener class objects cannot have non listener match",
    ),
    (
        "two-object-matches",
        "configPatches: [{applyTo: CLUSTER, match: {cluster: {name: x}, listener: {name: y}},"
        " patch: {operation: REMOVE}}]",
        7,
        "spec.configPatches[0].match.cluster",
        "(a oneof)",
    ),
    (
        "sub-filter-not-http-filter",
        "configPatches: [{applyTo: NETWORK_FILTER, match: {listener: {filterChain: {filter: "
        "{name: envoy.filters.network.http_connection_manager, subFilter: {name: x}}}}}, patch: {operation: REMOVE}}]",
        7,
        "spec.configPatches[0].match.listener.filterChain.filter.subFilter",
        "subfilter match can be used with applyTo HTTP_FILTER only",
    ),
    (
        "sub-filter-not-hcm",
        "configPatches: [{applyTo: HTTP_FILTER, match: {listener: {filterChain: {filter: "
        "{name: envoy.filters.network.tcp_proxy, subFilter: {name: x}}}}}, patch: {operation: REMOVE}}]",
        7,
        "spec.configPatches[0].match.listener.filterChain.filter.subFilter",
        "subfilter match requires filter match with envoy.filters.network.http_connection_manager",
    ),
    (
        "filter-without-name",
        "configPatches: [{applyTo: NETWORK_FILTER, match: {listener: {filterChain: {filter: {}}}},"
        " patch: {operation: REMOVE}}]",
        7,
        "spec.configPatches[0].match.listener.filterChain.filter.name",
        "filter match has no name to match on",
    ),
    (
        "listener-filter-match",
        "configPatches: [{applyTo: LISTENER, match: {listener: {listenerFilter: x}}, patch: {operation: REMOVE}}]",
        7,
        "spec.configPatches[0].match.listener.listenerFilter",
        "not supported by meshplane yet",
    ),
    (
        "target-refs",
        "targetRefs: [{kind: Gateway, name: gw}]\nconfigPatches: [{applyTo: CLUSTER, patch: {operation: REMOVE}}]",
        7,
        "spec.targetRefs",
        "not supported by meshplane yet",
    ),
    (
        "bad-port",
        "configPatches: [{applyTo: CLUSTER, match: {cluster: {portNumber: 0}}, patch: {operation: REMOVE}}]",
        7,
        "spec.configPatches[0].match.cluster.portNumber",
        "",
    ),
    (
        "bad-route-action",
        "configPatches: [{applyTo: HTTP_ROUTE, match: {routeConfiguration: {vhost: {route: {action: GO}}}},"
        " patch: {operation: REMOVE}}]",
        7,
        "spec.configPatches[0].match.routeConfiguration.vhost.route.action",
        "",
    ),
]


@pytest.mark.parametrize(
    ("body", "line", "path", "message"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS]
)
def test_rejected_with_line_and_path(body: str, line: int, path: str, message: str) -> None:
    found = errors(body)
    prefix = f"test.yaml:{line}: EnvoyFilter ns/r: {path}: "
    assert any(e.startswith(prefix) and message in e for e in found), found
