"""Every field of every Istio message meshplane reads (``pilot.config.istio_api.ISTIO_MESSAGES``), and what meshplane
does with it: the table ``test_istio_field_coverage.py`` walks.

Each message has a ``Site``: where it sits in a small mesh (the resource, the path under ``spec``) and the minimal
valid content it has there. Each field of the message is one of:

- ``Translated(value)``: setting it to ``value`` (on top of the site's content and the field's ``context``, which
  both sides get) changes the Envoy resources generated for the mesh's proxies;
- ``ProvenBy("tests/<file>.py::<test>")``: translated, and that generator test proves it (when no single value
  can show it against the site: a value whose only effect is a default, or one that needs a second resource);
- ``Rejected()``: validation says "not supported by meshplane yet" at the field's path;
- ``Removed()``: a field Istio removed from its API (in ``istio_api.REMOVED_FIELDS``): rejected, naming its
  replacement.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from e2e.jwt_tokens import signing_key

__all__ = [
    "CAPTURED_NODES",
    "MESH",
    "NODES",
    "SITES",
    "TABLE",
    "FieldUse",
    "ProvenBy",
    "Rejected",
    "Removed",
    "Site",
    "Translated",
]


@dataclass(frozen=True, slots=True)
class Translated:
    value: Any
    context: Mapping[str, Any] = field(default_factory=dict)  # sibling fields both sides get
    drop: tuple[str, ...] = ()  # sibling fields it replaces: the baseline has them, the changed side this one


@dataclass(frozen=True, slots=True)
class ProvenBy:
    test: str  # "tests/<file>.py::<test function>"


@dataclass(frozen=True, slots=True)
class Rejected:
    value: Any = None  # what to set (None: an empty mapping); validation rejects the field whatever it holds


@dataclass(frozen=True, slots=True)
class Removed:
    value: Any = None


FieldUse = Translated | ProvenBy | Rejected | Removed


@dataclass(frozen=True, slots=True)
class Site:
    kind: str
    name: str  # the resource (namespace default) that holds the message; added to MESH when not in it
    path: tuple[str | int, ...]  # under spec
    spec: Mapping[str, Any]  # the resource's whole spec, with the message's minimal content at ``path``


# ------------------------------------------------------------------------------------------------ the mesh

REVIEWS = "reviews.default.svc.cluster.local"
SE_REVIEWS = {
    "hosts": [REVIEWS],
    "ports": [{"number": 9080, "name": "http", "protocol": "HTTP", "targetPort": 19080}],
    "location": "MESH_INTERNAL",
    "resolution": "STATIC",
    "workloadSelector": {"labels": {"app": "reviews"}},
}
WE_V1 = {
    "address": "127.0.0.21",
    "ports": {"http": 19082},
    "labels": {"app": "reviews", "version": "v1"},
    "serviceAccount": "reviews",
}
DR_REVIEWS = {
    "host": "reviews",
    "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}],
}
ROUTE_V1 = {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}
VS_REVIEWS = {"hosts": ["reviews"], "http": [ROUTE_V1]}
TCP_ROUTE = {"match": [{"port": 3306}], "route": [{"destination": {"host": "db", "subset": "v1"}}]}
TLS_ROUTE = {"match": [{"sniHosts": ["secure"]}], "route": [{"destination": {"host": "secure"}}]}
VS_DB = {"hosts": ["db", "secure"], "tcp": [TCP_ROUTE], "tls": [TLS_ROUTE]}

# A Sidecar for namespace default's proxies: reviews alone (what each Sidecar field is compared against)
SC = {"egress": [{"hosts": ["./reviews.default.svc.cluster.local"]}]}
SC_PORT = {"egress": [{"port": {"number": 9080, "protocol": "HTTP"}, "hosts": ["./reviews.default.svc.cluster.local"]}]}
PC = {"concurrency": 2}
PROXY_IMAGE_TEST = "tests/test_config_proxy_config.py::test_image_type_default_is_the_proxy_meshplane_runs"
SC_POLICY = {**SC, "outboundTrafficPolicy": {"mode": "ALLOW_ANY"}}
SC_INGRESS = {"ingress": [{"port": {"number": 9080, "protocol": "HTTP"}}]}
SIDECAR_TEST = "tests/test_generate_sidecar_scope.py"
SIDECAR_INGRESS_TEST = "tests/test_generate_sidecar_ingress.py"

# (kind, name) -> spec; every resource in namespace default
WG = {"metadata": {"labels": {"app": "vm"}}, "template": {"ports": {"http": 8080}}}
MESH: dict[tuple[str, str], Mapping[str, Any]] = {
    ("ServiceEntry", "reviews"): SE_REVIEWS,
    ("WorkloadGroup", "vm"): WG,
    ("WorkloadEntry", "reviews-v1"): WE_V1,
    ("WorkloadEntry", "reviews-v2"): {"address": "127.0.0.22", "labels": {"app": "reviews", "version": "v2"}},
    ("ServiceEntry", "productpage"): {
        "hosts": ["productpage.default.svc.cluster.local"],
        "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
        "location": "MESH_INTERNAL",
        "resolution": "STATIC",
        "workloadSelector": {"labels": {"app": "productpage"}},
    },
    ("WorkloadEntry", "productpage"): {
        "address": "127.0.0.10",
        "ports": {"http": 19080},
        "labels": {"app": "productpage"},
        "serviceAccount": "productpage",
    },
    ("DestinationRule", "reviews"): DR_REVIEWS,
    ("VirtualService", "reviews"): VS_REVIEWS,
    # TCP and TLS services, for the tcp/tls routes captured sidecars apply
    ("ServiceEntry", "db"): {
        "hosts": ["db.default.svc.cluster.local"],
        "ports": [{"number": 3306, "name": "tcp", "protocol": "TCP"}],
        "location": "MESH_INTERNAL",
        "resolution": "STATIC",
        "workloadSelector": {"labels": {"app": "db"}},
    },
    ("WorkloadEntry", "db-v1"): {"address": "127.0.0.31", "labels": {"app": "db", "version": "v1"}},
    ("WorkloadEntry", "db-v2"): {"address": "127.0.0.32", "labels": {"app": "db", "version": "v2"}},
    ("DestinationRule", "db"): {
        "host": "db",
        "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}],
    },
    ("ServiceEntry", "secure"): {
        "hosts": ["secure.default.svc.cluster.local"],
        "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
        "resolution": "DNS",
    },
    ("VirtualService", "db"): VS_DB,
}
# The proxies whose resources are compared: both reviews sidecars, the client, and a client in another namespace.
NODES = (
    "sidecar~127.0.0.21~reviews-v1.default~default.svc.cluster.local",
    "sidecar~127.0.0.22~reviews-v2.default~default.svc.cluster.local",
    "sidecar~127.0.0.10~productpage.default~default.svc.cluster.local",
    "sidecar~127.0.0.50~client.other~other.svc.cluster.local",
)
# Proxies compared too with INTERCEPTION_MODE=REDIRECT (Istio's listener model: tcp/tls routes, VIP listeners).
CAPTURED_NODES = ("sidecar~127.0.0.10~productpage.default~default.svc.cluster.local",)


def _at(spec: Mapping[str, Any], path: tuple[str | int, ...], content: Any) -> dict[str, Any]:
    """A deep copy of ``spec`` with ``content`` at ``path`` (mapping keys and list indexes; missing parents are
    created)."""
    root: dict[str, Any] = json.loads(json.dumps(spec))
    if not path:
        return {**json.loads(json.dumps(content))}
    node: Any = root
    for step, following in itertools.pairwise(path):
        empty: Any = [] if isinstance(following, int) else {}
        if isinstance(step, int):
            while len(node) <= step:
                node.append(empty)
        elif step not in node:
            node[step] = empty
        node = node[step]
    last = path[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append({})
    node[last] = json.loads(json.dumps(content))
    return root


def vs_site(path: tuple[str | int, ...], content: Any, route: Mapping[str, Any] = ROUTE_V1) -> Site:
    """A message under the reviews VirtualService's first HTTP route (``route``: that route's base)."""
    return Site(
        "VirtualService",
        "reviews",
        ("http", 0, *path),
        _at({**VS_REVIEWS, "http": [route]}, ("http", 0, *path), content),
    )


def dr_site(path: tuple[str | int, ...], content: Any) -> Site:
    return Site("DestinationRule", "reviews", path, _at(DR_REVIEWS, path, content))


def ap_site(path: tuple[str | int, ...], content: Any, spec: Mapping[str, Any]) -> Site:
    return Site("AuthorizationPolicy", "ap", path, _at(spec, path, content) if path else content)


PA = {"mtls": {"mode": "STRICT"}}
JWKS = signing_key("table").jwks
JWT_RULE = {"issuer": "testing@secure.istio.io", "jwks": JWKS}
RA = {"jwtRules": [JWT_RULE]}
AP = {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}
AP_FROM = {"action": "DENY", "rules": [{"from": [{"source": {"namespaces": ["default"]}}]}]}
AP_WHEN = {"action": "DENY", "rules": [{"when": [{"key": "source.ip", "values": ["10.0.0.1"]}]}]}
REDIRECT_ROUTE = {"redirect": {"uri": "/r"}}
DIRECT_ROUTE = {"directResponse": {"status": 503}}
MUTUAL = {"mode": "MUTUAL", "clientCertificate": "/a.pem", "privateKey": "/a-key.pem"}
DISTRIBUTE = {"from": "*", "to": {"eu/*": 100}}  # the mesh's endpoints have no locality: they lose their traffic

GW = {
    "selector": {"istio": "ingressgateway"},
    "servers": [
        {
            "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
            "hosts": ["a.example.com"],
            "tls": {"mode": "SIMPLE", "serverCertificate": "/c.pem", "privateKey": "/k.pem"},
        }
    ],
}
GATEWAY_TEST = "tests/test_generate_gateway.py"

TM_LOG = {"accessLogging": [{"providers": [{"name": "envoy"}]}]}  # Istio's built-in provider: no MeshConfig needed


def _tracing_tag(kind: str, content: Mapping[str, Any]) -> dict[str, Any]:
    return {"tracing": [{"customTags": {"t": {kind: dict(content)}}}]}


# An EnvoyFilter for every proxy of namespace default: port 9080's outbound clusters connect in 7s
EF_MATCH = {"context": "SIDECAR_OUTBOUND", "cluster": {"portNumber": 9080}}
EF_PATCH = {"operation": "MERGE", "value": {"connect_timeout": "7s"}}
EF = {"configPatches": [{"applyTo": "CLUSTER", "match": EF_MATCH, "patch": EF_PATCH}]}
EF_PROXY = {"configPatches": [{"applyTo": "CLUSTER", "match": {**EF_MATCH, "proxy": {}}, "patch": EF_PATCH}]}
EF_LISTENER = {
    "configPatches": [
        {
            "applyTo": "LISTENER",
            "match": {"listener": {"portNumber": 9080}},
            "patch": {"operation": "MERGE", "value": {"per_connection_buffer_limit_bytes": 4096}},
        }
    ]
}
EF_PATHS: dict[str, tuple[str | int, ...]] = {
    "EnvoyFilter": (),
    "EnvoyFilter.EnvoyConfigObjectPatch": ("configPatches", 0),
    "EnvoyFilter.EnvoyConfigObjectMatch": ("configPatches", 0, "match"),
    "EnvoyFilter.ClusterMatch": ("configPatches", 0, "match", "cluster"),
    "EnvoyFilter.Patch": ("configPatches", 0, "patch"),
    # proven by the generator tests: the site only carries them
    "EnvoyFilter.ListenerMatch.FilterChainMatch": ("configPatches", 0, "match"),
    "EnvoyFilter.ListenerMatch.FilterMatch": ("configPatches", 0, "match"),
    "EnvoyFilter.ListenerMatch.SubFilterMatch": ("configPatches", 0, "match"),
    "EnvoyFilter.RouteConfigurationMatch": ("configPatches", 0, "match"),
    "EnvoyFilter.RouteConfigurationMatch.VirtualHostMatch": ("configPatches", 0, "match"),
    "EnvoyFilter.RouteConfigurationMatch.RouteMatch": ("configPatches", 0, "match"),
}

SITES: dict[str, Site] = {
    "Gateway": Site("Gateway", "gw", (), GW),
    "Server": Site("Gateway", "gw", ("servers", 0), GW),
    "Port": Site("Gateway", "gw", ("servers", 0, "port"), GW),
    "ServerTLSSettings": Site("Gateway", "gw", ("servers", 0, "tls"), GW),
    "VirtualService": Site("VirtualService", "reviews", (), VS_REVIEWS),
    "HTTPRoute": vs_site((), ROUTE_V1),
    "HTTPMatchRequest": vs_site(("match", 0), {"uri": {"prefix": "/"}}),
    "StringMatch": vs_site(("match", 0, "uri"), {"prefix": "/"}, {**ROUTE_V1, "match": [{"uri": {"prefix": "/"}}]}),
    "HTTPRouteDestination": vs_site(("route", 0), ROUTE_V1["route"][0]),
    "Destination": vs_site(("route", 0, "destination"), {"host": "reviews", "subset": "v1"}),
    "PortSelector": vs_site(
        ("route", 0, "destination", "port"), {"number": 9080}, {"route": [{"destination": {"host": "reviews"}}]}
    ),
    "Headers": vs_site(("headers",), {"request": {"set": {"x-a": "1"}}}),
    "Headers.HeaderOperations": vs_site(
        ("headers", "request"), {"set": {"x-a": "1"}}, {**ROUTE_V1, "headers": {"request": {}}}
    ),
    "HTTPRedirect": vs_site(("redirect",), {"uri": "/r"}, REDIRECT_ROUTE),
    "HTTPDirectResponse": vs_site(("directResponse",), {"status": 503}, DIRECT_ROUTE),
    "HTTPBody": vs_site(("directResponse", "body"), {"string": "x"}, {"directResponse": {"status": 503, "body": {}}}),
    "HTTPRewrite": vs_site(("rewrite",), {"uri": "/r"}),
    "RegexRewrite": vs_site(
        ("rewrite", "uriRegexRewrite"), {"match": "^/a", "rewrite": "/b"}, {**ROUTE_V1, "rewrite": {}}
    ),
    "HTTPRetry": vs_site(("retries",), {"attempts": 2}),
    "CorsPolicy": vs_site(("corsPolicy",), {"allowOrigins": [{"exact": "https://a.example.com"}]}),
    "HTTPFaultInjection": vs_site(("fault",), {"abort": {"httpStatus": 503}}),
    "HTTPFaultInjection.Delay": vs_site(("fault", "delay"), {"fixedDelay": "1s"}, {**ROUTE_V1, "fault": {}}),
    "HTTPFaultInjection.Abort": vs_site(("fault", "abort"), {"httpStatus": 503}, {**ROUTE_V1, "fault": {}}),
    "HTTPMirrorPolicy": vs_site(
        ("mirrors", 0), {"destination": {"host": "reviews", "subset": "v2"}}, {**ROUTE_V1, "mirrors": [{}]}
    ),
    "Percent": vs_site(
        ("fault", "abort", "percentage"),
        {"value": 50},
        {**ROUTE_V1, "fault": {"abort": {"httpStatus": 503}}},
    ),
    "TCPRoute": Site("VirtualService", "db", ("tcp", 0), VS_DB),
    "TLSRoute": Site("VirtualService", "db", ("tls", 0), VS_DB),
    "L4MatchAttributes": Site("VirtualService", "db", ("tcp", 0, "match", 0), VS_DB),
    "TLSMatchAttributes": Site("VirtualService", "db", ("tls", 0, "match", 0), VS_DB),
    "RouteDestination": Site("VirtualService", "db", ("tcp", 0, "route", 0), VS_DB),
    "DestinationRule": Site("DestinationRule", "reviews", (), DR_REVIEWS),
    "TrafficPolicy": dr_site(("trafficPolicy",), {"loadBalancer": {"simple": "RANDOM"}}),
    "TrafficPolicy.PortTrafficPolicy": dr_site(
        ("trafficPolicy",), {"portLevelSettings": [{"port": {"number": 9080}, "loadBalancer": {"simple": "RANDOM"}}]}
    ),
    "TrafficPolicy.ProxyProtocol": dr_site(("trafficPolicy",), {"proxyProtocol": {"version": "V1"}}),
    "TrafficPolicy.RetryBudget": dr_site(("trafficPolicy",), {"retryBudget": {"percent": 20}}),
    "Subset": dr_site(("subsets",), DR_REVIEWS["subsets"]),
    "LoadBalancerSettings": dr_site(("trafficPolicy",), {"loadBalancer": {"simple": "RANDOM"}}),
    "LoadBalancerSettings.ConsistentHashLB": dr_site(
        ("trafficPolicy",), {"loadBalancer": {"consistentHash": {"httpHeaderName": "x-user"}}}
    ),
    "LoadBalancerSettings.ConsistentHashLB.HTTPCookie": dr_site(
        ("trafficPolicy",), {"loadBalancer": {"consistentHash": {"httpCookie": {"name": "u", "ttl": "10s"}}}}
    ),
    "LoadBalancerSettings.ConsistentHashLB.RingHash": dr_site(
        ("trafficPolicy",),
        {"loadBalancer": {"consistentHash": {"httpHeaderName": "x", "ringHash": {"minimumRingSize": 2048}}}},
    ),
    "LoadBalancerSettings.ConsistentHashLB.MagLev": dr_site(
        ("trafficPolicy",),
        {"loadBalancer": {"consistentHash": {"httpHeaderName": "x", "maglev": {"tableSize": 65537}}}},
    ),
    "LocalityLoadBalancerSetting": dr_site(
        ("trafficPolicy",),
        {"loadBalancer": {"localityLbSetting": {"enabled": True}}, "outlierDetection": {"consecutive5xxErrors": 3}},
    ),
    "LocalityLoadBalancerSetting.Distribute": dr_site(
        ("trafficPolicy",), {"loadBalancer": {"localityLbSetting": {"distribute": [DISTRIBUTE]}}}
    ),
    "LocalityLoadBalancerSetting.Failover": dr_site(
        ("trafficPolicy",),
        {
            "loadBalancer": {"localityLbSetting": {"failover": [{"from": "eu", "to": "us"}]}},
            "outlierDetection": {"consecutive5xxErrors": 3},
        },
    ),
    "WarmupConfiguration": dr_site(("trafficPolicy",), {"loadBalancer": {"warmup": {"duration": "10s"}}}),
    "ConnectionPoolSettings": dr_site(("trafficPolicy",), {"connectionPool": {"tcp": {"maxConnections": 5}}}),
    "ConnectionPoolSettings.TCPSettings": dr_site(
        ("trafficPolicy",), {"connectionPool": {"tcp": {"maxConnections": 5}}}
    ),
    "ConnectionPoolSettings.TCPSettings.TcpKeepalive": dr_site(
        ("trafficPolicy",), {"connectionPool": {"tcp": {"tcpKeepalive": {"time": "10s"}}}}
    ),
    "ConnectionPoolSettings.HTTPSettings": dr_site(
        ("trafficPolicy",), {"connectionPool": {"http": {"http2MaxRequests": 10}}}
    ),
    "OutlierDetection": dr_site(("trafficPolicy",), {"outlierDetection": {"consecutive5xxErrors": 3}}),
    "ClientTLSSettings": dr_site(("trafficPolicy",), {"tls": {"mode": "SIMPLE"}}),
    "ServiceEntry": Site("ServiceEntry", "reviews", (), SE_REVIEWS),
    "ServicePort": Site("ServiceEntry", "reviews", (), SE_REVIEWS),
    "WorkloadSelector": Site("ServiceEntry", "reviews", (), SE_REVIEWS),
    "WorkloadEntry": Site("WorkloadEntry", "reviews-v1", (), WE_V1),
    "WorkloadGroup": Site("WorkloadGroup", "vm", (), WG),
    "WorkloadGroup.ObjectMeta": Site("WorkloadGroup", "vm", ("metadata",), WG),
    "PeerAuthentication": Site("PeerAuthentication", "pa", (), PA),
    "PeerAuthentication.MutualTLS": Site("PeerAuthentication", "pa", (), PA),
    "type.WorkloadSelector": Site(
        "PeerAuthentication", "pa", (), {**PA, "selector": {"matchLabels": {"app": "reviews"}}}
    ),
    "AuthorizationPolicy": Site("AuthorizationPolicy", "ap", (), AP),
    "AuthorizationPolicy.ExtensionProvider": Site(
        "AuthorizationPolicy", "ap", (), {"action": "CUSTOM", "provider": {"name": "mixer"}, "rules": [{}]}
    ),
    "Rule": Site("AuthorizationPolicy", "ap", (), AP),
    "Rule.From": Site("AuthorizationPolicy", "ap", (), AP_FROM),
    "Rule.To": Site("AuthorizationPolicy", "ap", (), AP),
    "Source": Site("AuthorizationPolicy", "ap", (), AP_FROM),
    "Operation": Site("AuthorizationPolicy", "ap", (), AP),
    "Condition": Site("AuthorizationPolicy", "ap", (), AP_WHEN),
    "RequestAuthentication": Site("RequestAuthentication", "ra", (), RA),
    "JWTRule": Site("RequestAuthentication", "ra", ("jwtRules", 0), RA),
    "JWTHeader": Site(
        "RequestAuthentication", "ra", ("jwtRules", 0), {"jwtRules": [{**JWT_RULE, "fromHeaders": [{"name": "x-jwt"}]}]}
    ),
    "ClaimToHeader": Site(
        "RequestAuthentication",
        "ra",
        ("jwtRules", 0),
        {"jwtRules": [{**JWT_RULE, "outputClaimToHeaders": [{"header": "x-sub", "claim": "sub"}]}]},
    ),
    "Sidecar": Site("Sidecar", "sc", (), SC),
    "Telemetry": Site("Telemetry", "tm", (), TM_LOG),
    "AccessLogging": Site("Telemetry", "tm", ("accessLogging", 0), TM_LOG),
    "AccessLogging.LogSelector": Site(
        "Telemetry", "tm", ("accessLogging", 0, "match"), _at(TM_LOG, ("accessLogging", 0, "match"), {})
    ),
    "AccessLogging.Filter": Site(
        "Telemetry",
        "tm",
        ("accessLogging", 0, "filter"),
        _at(TM_LOG, ("accessLogging", 0, "filter"), {"expression": "response.code >= 400"}),
    ),
    "ProviderRef": Site("Telemetry", "tm", ("accessLogging", 0, "providers", 0), TM_LOG),
    "Metrics": Site("Telemetry", "tm", ("metrics", 0), {"metrics": [{"providers": [{"name": "prometheus"}]}]}),
    "MetricsOverrides": Site("Telemetry", "tm", ("metrics", 0, "overrides", 0), {"metrics": [{"overrides": [{}]}]}),
    "MetricSelector": Site(
        "Telemetry", "tm", ("metrics", 0, "overrides", 0, "match"), {"metrics": [{"overrides": [{"match": {}}]}]}
    ),
    "MetricsOverrides.TagOverride": Site(
        "Telemetry",
        "tm",
        ("metrics", 0, "overrides", 0, "tagOverrides", "x"),
        {"metrics": [{"overrides": [{"tagOverrides": {"x": {"operation": "REMOVE"}}}]}]},
    ),
    "Tracing": Site("Telemetry", "tm", ("tracing", 0), {"tracing": [{}]}),
    "Tracing.TracingSelector": Site("Telemetry", "tm", ("tracing", 0, "match"), {"tracing": [{"match": {}}]}),
    "Tracing.CustomTag": Site("Telemetry", "tm", ("tracing", 0, "customTags", "t"), _tracing_tag("literal", {})),
    "Tracing.Literal": Site(
        "Telemetry", "tm", ("tracing", 0, "customTags", "t", "literal"), _tracing_tag("literal", {})
    ),
    "Tracing.Environment": Site(
        "Telemetry", "tm", ("tracing", 0, "customTags", "t", "environment"), _tracing_tag("environment", {"name": "E"})
    ),
    "Tracing.RequestHeader": Site(
        "Telemetry", "tm", ("tracing", 0, "customTags", "t", "header"), _tracing_tag("header", {"name": "x-h"})
    ),
    "IstioEgressListener": Site("Sidecar", "sc", ("egress", 0), SC),
    "IstioIngressListener": Site("Sidecar", "sc", ("ingress", 0), SC_INGRESS),
    "SidecarPort": Site("Sidecar", "sc", ("egress", 0, "port"), SC_PORT),
    "OutboundTrafficPolicy": Site("Sidecar", "sc", ("outboundTrafficPolicy",), SC_POLICY),
    **{message: Site("EnvoyFilter", "ef", path, EF) for message, path in EF_PATHS.items()},
    "EnvoyFilter.ProxyMatch": Site("EnvoyFilter", "ef", ("configPatches", 0, "match", "proxy"), EF_PROXY),
    "EnvoyFilter.ListenerMatch": Site("EnvoyFilter", "ef", ("configPatches", 0, "match", "listener"), EF_LISTENER),
    "ProxyConfig": Site("ProxyConfig", "pc", (), PC),
    "ProxyImage": Site("ProxyConfig", "pc", ("image",), {**PC, "image": {"imageType": "default"}}),
}

# Where, under the site's spec, the message itself is (when it is not the site's ``path``).
MESSAGE_PATHS: dict[str, tuple[str | int, ...]] = {
    "TrafficPolicy": ("trafficPolicy",),
    "TrafficPolicy.PortTrafficPolicy": ("trafficPolicy", "portLevelSettings", 0),
    "TrafficPolicy.ProxyProtocol": ("trafficPolicy", "proxyProtocol"),
    "TrafficPolicy.RetryBudget": ("trafficPolicy", "retryBudget"),
    "Subset": ("subsets", 0),
    "LoadBalancerSettings": ("trafficPolicy", "loadBalancer"),
    "LoadBalancerSettings.ConsistentHashLB": ("trafficPolicy", "loadBalancer", "consistentHash"),
    "LoadBalancerSettings.ConsistentHashLB.HTTPCookie": (
        "trafficPolicy",
        "loadBalancer",
        "consistentHash",
        "httpCookie",
    ),
    "LoadBalancerSettings.ConsistentHashLB.RingHash": ("trafficPolicy", "loadBalancer", "consistentHash", "ringHash"),
    "LoadBalancerSettings.ConsistentHashLB.MagLev": ("trafficPolicy", "loadBalancer", "consistentHash", "maglev"),
    "LocalityLoadBalancerSetting": ("trafficPolicy", "loadBalancer", "localityLbSetting"),
    "LocalityLoadBalancerSetting.Distribute": ("trafficPolicy", "loadBalancer", "localityLbSetting", "distribute", 0),
    "LocalityLoadBalancerSetting.Failover": ("trafficPolicy", "loadBalancer", "localityLbSetting", "failover", 0),
    "WarmupConfiguration": ("trafficPolicy", "loadBalancer", "warmup"),
    "ConnectionPoolSettings": ("trafficPolicy", "connectionPool"),
    "ConnectionPoolSettings.TCPSettings": ("trafficPolicy", "connectionPool", "tcp"),
    "ConnectionPoolSettings.TCPSettings.TcpKeepalive": ("trafficPolicy", "connectionPool", "tcp", "tcpKeepalive"),
    "ConnectionPoolSettings.HTTPSettings": ("trafficPolicy", "connectionPool", "http"),
    "OutlierDetection": ("trafficPolicy", "outlierDetection"),
    "ClientTLSSettings": ("trafficPolicy", "tls"),
    "ServicePort": ("ports", 0),
    "WorkloadSelector": ("workloadSelector",),
    "PeerAuthentication.MutualTLS": ("mtls",),
    "type.WorkloadSelector": ("selector",),
    "AuthorizationPolicy.ExtensionProvider": ("provider",),
    "Rule": ("rules", 0),
    "Rule.From": ("rules", 0, "from", 0),
    "Rule.To": ("rules", 0, "to", 0),
    "Source": ("rules", 0, "from", 0, "source"),
    "Operation": ("rules", 0, "to", 0, "operation"),
    "Condition": ("rules", 0, "when", 0),
    "JWTHeader": ("jwtRules", 0, "fromHeaders", 0),
    "ClaimToHeader": ("jwtRules", 0, "outputClaimToHeaders", 0),
    "IstioEgressListener": ("egress", 0),
    "IstioIngressListener": ("ingress", 0),
    "SidecarPort": ("egress", 0, "port"),
    "OutboundTrafficPolicy": ("outboundTrafficPolicy",),
    "ProxyImage": ("image",),
}

T, P, R, X = Translated, ProvenBy, Rejected, Removed
LOCALITY_TEST = "tests/test_generate_locality_lb.py"
JWKS_TIMEOUT_TEST = "tests/test_generate_jwt_authn.py::test_jwks_uri_is_fetched_by_envoy_through_the_outbound_cluster"
CUSTOM_TEST = "tests/test_generate_authz_filters.py::test_ext_authz_calls_mixer_only_for_matching_custom_rules"
EF_TEST = "tests/test_generate_envoy_filter.py"
EF_LUA = P(f"{EF_TEST}::test_docs_lua_filter_goes_before_the_router_on_inbound_port_8080_and_its_cluster_is_added")
EF_CHAIN = P(f"{EF_TEST}::test_filter_chain_merge_remove_and_add_on_virtual_inbound_by_destination_port")
EF_ROUTE = P(f"{EF_TEST}::test_http_route_merge_insert_and_remove")
EF_GATEWAY = P(f"{EF_TEST}::test_gateway_route_tables_match_on_port_name_and_gateway")
EXTENSION_PROVIDER_TEST = "tests/test_generate_ext_authz.py::test_custom_policy_calls_its_provider"
OTHER_ROUTE = [{"destination": {"host": "reviews", "subset": "v2"}}]
L4_TEST = "tests/test_generate_l4_routes.py"
OTEL_TEST = "tests/test_generate_telemetry.py::test_opentelemetry_tracing_on_sidecar_and_gateway_hcms"
OVERRIDES_TEST = "tests/test_mixer_metric_overrides.py"
AUTOREGISTRATION = "tests/test_autoregistration.py"
AUTOREGISTERED = "test_a_connecting_proxy_gets_a_workload_entry_until_the_grace_period_after_it_leaves"

TABLE: dict[str, dict[str, FieldUse]] = {
    "Gateway": {
        "servers": P(f"{GATEWAY_TEST}::test_http_server_listens_on_its_port_with_rds_http_port"),
        "selector": P(f"{GATEWAY_TEST}::test_gateways_select_by_labels_and_sidecars_keep_their_own_listeners"),
    },
    "Server": {
        "port": P(f"{GATEWAY_TEST}::test_http_server_listens_on_its_port_with_rds_http_port"),
        "bind": P(f"{GATEWAY_TEST}::test_bound_server_listens_on_its_address_only"),
        "hosts": P(f"{GATEWAY_TEST}::test_virtual_host_has_istio_gateway_domains_and_the_bound_routes"),
        "tls": P(f"{GATEWAY_TEST}::test_mutual_tls_server_with_files"),
        "defaultEndpoint": R("127.0.0.1:8080"),
        "name": P(f"{GATEWAY_TEST}::test_server_name_is_the_https_stat_prefix_as_istio_names_it"),
    },
    "Port": {
        "number": P(f"{GATEWAY_TEST}::test_http_server_listens_on_its_port_with_rds_http_port"),
        "protocol": P(f"{GATEWAY_TEST}::test_mutual_tls_server_with_files"),
        "name": P(f"{GATEWAY_TEST}::test_mutual_tls_server_with_files"),  # in the HTTPS route table's name
        "targetPort": P("tests/test_config_gateway.py::test_gateway_rejections"),  # Istio's own rejection
    },
    "ServerTLSSettings": {
        "httpsRedirect": P(f"{GATEWAY_TEST}::test_https_redirect_requires_tls_on_the_server_hosts"),
        "mode": P(f"{GATEWAY_TEST}::test_mutual_tls_server_with_files"),
        "serverCertificate": P(f"{GATEWAY_TEST}::test_mutual_tls_server_with_files"),
        "privateKey": P(f"{GATEWAY_TEST}::test_mutual_tls_server_with_files"),
        "caCertificates": P(f"{GATEWAY_TEST}::test_mutual_tls_server_with_files"),
        "caCrl": P(f"{GATEWAY_TEST}::test_ca_crl_is_the_client_validation_crl"),
        "credentialName": P(f"{GATEWAY_TEST}::test_credential_name_references_citadel_sds_secrets"),
        "credentialNames": R(["a"]),
        "tlsCertificates": R([]),
        "subjectAltNames": P(f"{GATEWAY_TEST}::test_mutual_tls_server_with_files"),
        "verifyCertificateSpki": R(["x"]),
        "verifyCertificateHash": R(["x"]),
        "minProtocolVersion": P(f"{GATEWAY_TEST}::test_tls_versions_and_cipher_suites"),
        "maxProtocolVersion": P(f"{GATEWAY_TEST}::test_tls_versions_and_cipher_suites"),
        "cipherSuites": P(f"{GATEWAY_TEST}::test_tls_versions_and_cipher_suites"),
    },
    "VirtualService": {
        "hosts": T(["productpage"]),
        "gateways": P("tests/test_config_virtual_service.py::test_virtual_service_rejections"),  # only mesh
        "http": T([{"route": OTHER_ROUTE}]),
        "tls": P(f"{L4_TEST}::test_tls_routes_match_sni_on_the_tls_port"),  # the reviews site has HTTP only
        "tcp": P(f"{L4_TEST}::test_tcp_weighted_split_to_subsets"),
        "exportTo": T(["."]),  # the client in namespace other gets the default route
    },
    "HTTPRoute": {
        "name": T("r1"),
        "match": T([{"uri": {"prefix": "/a"}}]),
        "route": T(OTHER_ROUTE),
        "redirect": T({"uri": "/x"}, drop=("route",)),
        "directResponse": T({"status": 503}, drop=("route",)),
        "delegate": P("tests/test_model_virtual_service_merge.py::test_sidecar_routes_of_a_root_with_its_delegate"),
        "rewrite": T({"uri": "/x"}),
        "timeout": T("3s"),
        "retries": T({"attempts": 5}),
        "fault": T({"abort": {"httpStatus": 503}}),
        "mirror": T({"host": "reviews", "subset": "v2"}),
        "mirrors": T([{"destination": {"host": "reviews", "subset": "v2"}}]),
        "mirrorPercent": R(50),
        "mirrorPercentage": T({"value": 50}, context={"mirror": {"host": "reviews", "subset": "v2"}}),
        "corsPolicy": T({"allowOrigins": [{"exact": "https://a.example.com"}]}),
        "headers": T({"request": {"set": {"x-a": "1"}}}),
        "websocketUpgrade": X(True),
        "appendHeaders": X({"x-a": "1"}),
        "removeResponseHeaders": X(["x-a"]),
        "appendResponseHeaders": X({"x-a": "1"}),
        "removeRequestHeaders": X(["x-a"]),
        "appendRequestHeaders": X({"x-a": "1"}),
    },
    "HTTPMatchRequest": {
        "name": T("m1", context={"uri": {"prefix": "/"}}),
        "uri": T({"prefix": "/a"}),
        "scheme": T({"exact": "https"}),
        "method": T({"exact": "GET"}),
        "authority": T({"exact": "reviews"}),
        "headers": T({"x-a": {"exact": "1"}}),
        "port": T(9081),  # a match for another port: this port's route table no longer has the route
        "sourceLabels": T({"app": "no-such-client"}),  # no proxy has the label: its tables leave the match out
        "gateways": P(f"{GATEWAY_TEST}::test_match_gateways_pick_where_a_route_applies"),
        "queryParams": T({"q": {"exact": "1"}}),
        "ignoreUriCase": T(True),
        "withoutHeaders": T({"x-a": {"exact": "1"}}),
        "sourceNamespace": T("elsewhere"),  # no proxy is in that namespace: its tables leave the match out
        "statPrefix": T("reviews-api", context={"uri": {"prefix": "/"}}),
    },
    "StringMatch": {
        "exact": T("/a", drop=("prefix",)),
        "prefix": T("/a"),
        "regex": T("/a.*", drop=("prefix",)),
    },
    "HTTPRouteDestination": {
        "destination": T({"host": "reviews", "subset": "v2"}),
        "weight": P("tests/test_generate_route_action.py::test_weighted_split_keeps_weights_and_skips_zero"),
        "headers": T({"request": {"set": {"x-a": "1"}}}),
    },
    "Destination": {
        "host": T("productpage", drop=("subset",)),
        "subset": T("v2"),
        "port": P("tests/test_generate_route_action.py::test_destination_cluster"),  # one-port service: same
    },
    "PortSelector": {
        "number": P("tests/test_generate_route_action.py::test_destination_cluster"),
    },
    "Headers": {
        "request": T({"add": {"x-b": "2"}}),
        "response": T({"set": {"x-r": "1"}}),
    },
    "Headers.HeaderOperations": {
        "set": T({"x-a": "2"}),
        "add": T({"x-b": "2"}),
        "remove": T(["x-c"]),
    },
    "HTTPRedirect": {
        "uri": T("/s"),
        "authority": T("a.example.com"),
        "port": T(8080),
        "derivePort": T("FROM_REQUEST_PORT"),
        "scheme": T("https"),
        "redirectCode": T(302),
    },
    "HTTPDirectResponse": {
        "status": T(404),
        "body": T({"string": "x"}),
    },
    "HTTPBody": {
        "string": T("y"),
        "bytes": T("eQ==", drop=("string",)),
    },
    "HTTPRewrite": {
        "uri": T("/s"),
        "authority": T("a.example.com"),
        "uriRegexRewrite": T({"match": "^/a", "rewrite": "/b"}, drop=("uri",)),
    },
    "RegexRewrite": {
        "match": T("^/c"),
        "rewrite": T("/d"),
    },
    "HTTPRetry": {
        "attempts": T(5),
        "perTryTimeout": T("1s"),
        "retryOn": T("5xx"),
        "retryRemoteLocalities": T(True),
        "retryIgnorePreviousHosts": T(False),  # true is Istio's default: the previous_hosts predicate
        "backoff": T("1s"),
    },
    "CorsPolicy": {
        "allowOrigin": T(["https://b.example.com"], drop=("allowOrigins",)),
        "allowOrigins": T([{"prefix": "https://b."}]),
        "allowMethods": T(["GET", "POST"]),
        "allowHeaders": T(["x-a"]),
        "exposeHeaders": T(["x-b"]),
        "maxAge": T("24h"),
        "allowCredentials": T(True),
        "unmatchedPreflights": T("IGNORE"),
    },
    "HTTPFaultInjection": {
        "delay": T({"fixedDelay": "1s"}),
        "abort": T({"httpStatus": 500}),
    },
    "HTTPFaultInjection.Delay": {
        "percent": T(50),
        "fixedDelay": T("2s"),
        "exponentialDelay": R("1s"),
        "percentage": T({"value": 50}),
    },
    "HTTPFaultInjection.Abort": {
        "httpStatus": T(500),
        "grpcStatus": T("UNAVAILABLE", drop=("httpStatus",)),
        "http2Error": R("REFUSED_STREAM"),
        "percentage": T({"value": 50}),
        "percent": X(50),
    },
    "HTTPMirrorPolicy": {
        "destination": T({"host": "productpage"}),
        "percentage": T({"value": 50}),
    },
    "Percent": {"value": T(25)},
    "TCPRoute": {
        "match": T([{"port": 3307}]),  # for another port: the default chain instead
        "route": T([{"destination": {"host": "db", "subset": "v2"}}]),
    },
    "TLSRoute": {
        "match": T([{"sniHosts": ["secure", "db"]}]),
        "route": T([{"destination": {"host": "db", "port": {"number": 3306}}}]),
    },
    "L4MatchAttributes": {
        "destinationSubnets": T(["10.0.0.0/8"]),
        "port": T(3307),
        "sourceLabels": T({"app": "other"}),  # not productpage's: the route no longer applies to it
        "gateways": P(f"{L4_TEST}::test_match_gateways_mesh_applies_to_sidecars"),  # only mesh: no change
        "sourceNamespace": T("other"),
    },
    "TLSMatchAttributes": {
        "sniHosts": T(["secure", "db"]),
        "destinationSubnets": T(["10.0.0.0/8"]),
        "port": T(444),
        "sourceLabels": T({"app": "other"}),
        "gateways": P(f"{L4_TEST}::test_match_gateways_mesh_applies_to_sidecars"),
        "sourceNamespace": T("other"),
    },
    "RouteDestination": {
        "destination": T({"host": "db", "subset": "v2"}),
        "weight": P(f"{L4_TEST}::test_tcp_weighted_split_to_subsets"),  # one destination: any weight is all
    },
    "DestinationRule": {
        "host": T("productpage"),
        "trafficPolicy": T({"loadBalancer": {"simple": "RANDOM"}}),
        "subsets": T([{"name": "v1", "labels": {"version": "v2"}}]),
        "exportTo": T(["."]),  # the client in namespace other loses the subsets
        "workloadSelector": T({"matchLabels": {"app": "productpage"}}),  # the reviews sidecars lose the subsets
    },
    "TrafficPolicy": {
        "loadBalancer": T({"simple": "ROUND_ROBIN"}),
        "connectionPool": T({"tcp": {"maxConnections": 5}}),
        "outlierDetection": T({"consecutive5xxErrors": 3}),
        "tls": T({"mode": "ISTIO_MUTUAL"}),
        "portLevelSettings": T([{"port": {"number": 9080}, "loadBalancer": {"simple": "ROUND_ROBIN"}}]),
        "tunnel": R(),
        "proxyProtocol": T({"version": "V2"}),
        "retryBudget": T({"percent": 25}),
    },
    "TrafficPolicy.ProxyProtocol": {"version": T("V2")},
    "TrafficPolicy.RetryBudget": {"percent": T(30), "minRetryConcurrency": T(5)},
    "TrafficPolicy.PortTrafficPolicy": {
        "port": T({"number": 9081}),  # no longer this port's
        "loadBalancer": T({"simple": "ROUND_ROBIN"}),
        "connectionPool": T({"tcp": {"maxConnections": 5}}),
        "outlierDetection": T({"consecutive5xxErrors": 3}),
        "tls": T({"mode": "ISTIO_MUTUAL"}),
    },
    "Subset": {
        "name": T("v9"),
        "labels": T({"version": "v2"}),
        "trafficPolicy": T({"loadBalancer": {"simple": "ROUND_ROBIN"}}),
    },
    "LoadBalancerSettings": {
        "simple": T("ROUND_ROBIN"),
        "consistentHash": T({"httpHeaderName": "x-user"}, drop=("simple",)),
        "localityLbSetting": T({"distribute": [DISTRIBUTE]}),
        "warmupDurationSecs": T("10s", drop=("simple",)),
        "warmup": T({"duration": "10s"}, drop=("simple",)),
    },
    "LoadBalancerSettings.ConsistentHashLB": {
        "httpHeaderName": T("x-other"),
        "httpCookie": T({"name": "u", "ttl": "10s"}, drop=("httpHeaderName",)),
        "useSourceIp": T(True, drop=("httpHeaderName",)),
        "httpQueryParameterName": T("u", drop=("httpHeaderName",)),
        "ringHash": T({"minimumRingSize": 2048}),  # instead of the deprecated field's default, 1024
        "maglev": T({"tableSize": 65537}),
        "minimumRingSize": T(2048),
    },
    "LoadBalancerSettings.ConsistentHashLB.HTTPCookie": {"name": T("v"), "path": T("/x"), "ttl": T("20s")},
    "LoadBalancerSettings.ConsistentHashLB.RingHash": {"minimumRingSize": T(4096)},
    "LoadBalancerSettings.ConsistentHashLB.MagLev": {"tableSize": T(7)},
    "LocalityLoadBalancerSetting": {
        "distribute": T([DISTRIBUTE]),
        # the mesh's endpoints have no locality: every one is at priority 0 whatever the failover says
        "failover": P(f"{LOCALITY_TEST}::test_failover_priorities"),
        "failoverPriority": T(["version=v2"]),  # v2 first, v1 next
        "enabled": T(False),  # no locality weighting with outlier detection any more
    },
    "LocalityLoadBalancerSetting.Distribute": {"from": T("eu/*"), "to": T({"*": 100})},
    "LocalityLoadBalancerSetting.Failover": {
        "from": P(f"{LOCALITY_TEST}::test_failover_priorities"),
        "to": P(f"{LOCALITY_TEST}::test_failover_priorities"),
    },
    "WarmupConfiguration": {"duration": T("20s"), "minimumPercent": T(20), "aggression": T(2)},
    "ConnectionPoolSettings": {
        "tcp": T({"maxConnections": 6}),
        "http": T({"http2MaxRequests": 10}),
    },
    "ConnectionPoolSettings.TCPSettings": {
        "maxConnections": T(6),
        "connectTimeout": T("2s"),
        "tcpKeepalive": T({"time": "10s"}),
        "maxConnectionDuration": T("1h"),
        "idleTimeout": T("1h"),
    },
    "ConnectionPoolSettings.TCPSettings.TcpKeepalive": {
        "probes": T(3),
        "time": T("20s"),
        "interval": T("5s"),
    },
    "ConnectionPoolSettings.HTTPSettings": {
        "http1MaxPendingRequests": T(5),
        "http2MaxRequests": T(11),
        "maxRequestsPerConnection": T(2),
        "maxRetries": T(4),
        "idleTimeout": T("30s"),
        "h2UpgradePolicy": T("UPGRADE"),
        "useClientProtocol": T(True),
        "maxConcurrentStreams": P("tests/test_generate_clusters.py::test_destination_rule_traffic_policy"),  # HTTP/2
    },
    "OutlierDetection": {
        "consecutiveErrors": R(5),
        "splitExternalLocalOriginErrors": T(True),
        "consecutiveLocalOriginFailures": T(4, context={"splitExternalLocalOriginErrors": True}),
        "consecutiveGatewayErrors": T(2),
        "consecutive5xxErrors": T(4),
        "interval": T("5s"),
        "baseEjectionTime": T("1m"),
        "maxEjectionPercent": T(50),
        "minHealthPercent": T(20),
    },
    "ClientTLSSettings": {
        "mode": T("ISTIO_MUTUAL"),
        "clientCertificate": T("/c.pem", context=MUTUAL),
        "privateKey": T("/k.pem", context=MUTUAL),
        "caCertificates": T("/ca.pem"),
        "credentialName": T("client-credential"),  # the CAs of kubernetes://client-credential-cacert over SDS
        "subjectAltNames": T(["a.example.com"]),
        "sni": T("s.example.com"),
        "insecureSkipVerify": T(True),
        "caCrl": T("/crl.pem"),
    },
    "ServiceEntry": {
        "hosts": T([REVIEWS, "reviews2.default.svc.cluster.local"]),
        "addresses": T(["10.0.0.1"]),  # the VIP: a captured client's virtual host domains
        "ports": T([{"number": 9081, "name": "http", "protocol": "HTTP", "targetPort": 19080}]),
        "location": T("MESH_EXTERNAL"),
        "resolution": T("DNS"),
        "endpoints": T([{"address": "10.0.0.1"}], drop=("workloadSelector",)),
        "workloadSelector": T({"labels": {"version": "v1"}}),
        "exportTo": T(["."]),  # the client in namespace other no longer sees reviews
        "subjectAltNames": T(["spiffe://cluster.local/ns/default/sa/canary"]),
    },
    "ServicePort": {
        "number": T(9081),
        "protocol": T("HTTP2"),
        "name": T("http-web"),  # reviews-v1's ports map names "http"
        "targetPort": T(19090),  # reviews-v2 has no ports map
    },
    "WorkloadSelector": {"labels": T({"app": "reviews", "version": "v1"})},
    "WorkloadEntry": {
        "address": T("127.0.0.25"),
        "ports": T({"http": 19081}),
        "labels": T({"app": "reviews", "version": "v2"}),
        "network": R("network-1"),
        "locality": T("eu/zone-1"),
        "weight": T(3),
        "serviceAccount": T("other"),
    },
    # a WorkloadGroup changes nothing until a proxy connects with AUTO_REGISTER_GROUP
    "WorkloadGroup": {
        "metadata": P(f"{AUTOREGISTRATION}::{AUTOREGISTERED}"),
        "template": P(f"{AUTOREGISTRATION}::{AUTOREGISTERED}"),
        "probe": R({"httpGet": {"port": 8080}}),
    },
    "WorkloadGroup.ObjectMeta": {
        "labels": P(f"{AUTOREGISTRATION}::{AUTOREGISTERED}"),
        "annotations": P(f"{AUTOREGISTRATION}::test_workload_group_is_read"),
    },
    "PeerAuthentication": {
        "selector": T({"matchLabels": {"version": "v2"}}),
        "mtls": T({"mode": "DISABLE"}),
        "portLevelMtls": T({"19082": {"mode": "DISABLE"}}, context={"selector": {"matchLabels": {"app": "reviews"}}}),
    },
    "PeerAuthentication.MutualTLS": {"mode": T("DISABLE")},
    "type.WorkloadSelector": {"matchLabels": T({"app": "productpage"})},
    "AuthorizationPolicy": {
        "selector": T({"matchLabels": {"app": "productpage"}}),
        "targetRef": R({"kind": "Service", "name": "reviews"}),
        "targetRefs": R([{"kind": "Service", "name": "reviews"}]),
        "rules": T([{"to": [{"operation": {"paths": ["/b"]}}]}]),
        "action": T("AUDIT"),
        "provider": P(CUSTOM_TEST),
    },
    "AuthorizationPolicy.ExtensionProvider": {
        "name": P(EXTENSION_PROVIDER_TEST),
    },
    "Rule": {
        "from": T([{"source": {"namespaces": ["default"]}}]),
        "to": T([{"operation": {"paths": ["/b"]}}]),
        "when": T([{"key": "source.ip", "values": ["10.0.0.1"]}]),
    },
    "Rule.From": {"source": T({"namespaces": ["other"]})},
    "Rule.To": {"operation": T({"paths": ["/b"]})},
    "Source": {
        "principals": T(["cluster.local/ns/default/sa/x"]),
        "notPrincipals": T(["cluster.local/ns/default/sa/x"]),
        "requestPrincipals": T(["iss/sub"]),
        "notRequestPrincipals": T(["iss/sub"]),
        "namespaces": T(["other"]),
        "notNamespaces": T(["other"]),
        "serviceAccounts": T(["default/x"], drop=("namespaces",)),
        "notServiceAccounts": T(["default/x"], drop=("namespaces",)),
        "ipBlocks": T(["10.0.0.0/8"]),
        "notIpBlocks": T(["10.0.0.0/8"]),
        "remoteIpBlocks": T(["10.0.0.0/8"]),
        "notRemoteIpBlocks": T(["10.0.0.0/8"]),
    },
    "Operation": {
        "hosts": T(["reviews"]),
        "notHosts": T(["reviews"]),
        "ports": T(["19082"]),
        "notPorts": T(["19082"]),
        "methods": T(["GET"]),
        "notMethods": T(["GET"]),
        "paths": T(["/b"]),
        "notPaths": T(["/b"]),
    },
    "Sidecar": {
        "workloadSelector": T({"labels": {"app": "reviews"}}),  # productpage then sees every service
        "ingress": T([{"port": {"number": 9080, "protocol": "HTTP"}, "defaultEndpoint": "127.0.0.1:9090"}]),
        "egress": T([{"hosts": ["~/*"]}]),
        "inboundConnectionPool": T({"tcp": {"maxConnections": 5}}),
        "outboundTrafficPolicy": T({"mode": "REGISTRY_ONLY"}),
    },
    "ProxyConfig": {
        "selector": T({"matchLabels": {"app": "reviews"}}),  # productpage's proxy then keeps the default
        "concurrency": T(4),
        "environmentVariables": T({"LOG_FORMAT": "json"}),
        "image": P(PROXY_IMAGE_TEST),
    },
    "ProxyImage": {"imageType": P(PROXY_IMAGE_TEST)},
    "IstioEgressListener": {
        "port": T({"number": 9081, "protocol": "HTTP"}),
        "bind": R("127.0.0.1"),
        "captureMode": P(f"{SIDECAR_TEST}::test_capture_mode_default_and_iptables_are_how_pods_capture"),
        "hosts": T(["*/*"]),
    },
    "IstioIngressListener": {
        "port": T({"number": 9081, "protocol": "HTTP"}),
        "bind": R("127.0.0.1"),
        "captureMode": P(f"{SIDECAR_INGRESS_TEST}::test_capture_mode_default_and_iptables_are_how_pods_capture"),
        "defaultEndpoint": T("127.0.0.1:9090"),
        "tls": P(f"{SIDECAR_INGRESS_TEST}::test_ingress_tls_is_terminated_where_peer_authentication_disables_mtls"),
        "connectionPool": T({"tcp": {"maxConnections": 5}}),
    },
    "SidecarPort": {
        "number": T(9081),
        "protocol": T("HTTP2"),  # reviews' 9080 is HTTP: a listener of another protocol admits none of it
        "name": P(f"{SIDECAR_TEST}::test_egress_port_name_is_checked_and_names_nothing_generated"),
        "targetPort": R(9090),
    },
    "OutboundTrafficPolicy": {
        "mode": T("REGISTRY_ONLY"),
        "egressProxy": T({"host": "reviews.default.svc.cluster.local", "port": {"number": 9080}}),
    },
    "Condition": {
        "key": T("remote.ip"),
        "values": T(["10.0.0.2"]),
        "notValues": T(["10.0.0.3"]),
    },
    "RequestAuthentication": {
        "selector": T({"matchLabels": {"version": "v2"}}),
        "targetRef": R({"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}),
        "targetRefs": R([{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}]),
        "jwtRules": T([{"issuer": "other", "jwks": JWKS}]),
    },
    "JWTRule": {
        "issuer": T("other"),
        "audiences": T(["bookinfo"]),
        "jwksUri": T(f"http://{REVIEWS}:9080/jwks.json", drop=("jwks",)),
        "jwks": T(signing_key("table-other").jwks),
        "fromHeaders": T([{"name": "x-jwt-assertion", "prefix": "Bearer "}]),
        "fromParams": T(["my_token"]),
        "outputPayloadToHeader": T("x-jwt-payload"),
        "fromCookies": T(["session"]),
        "forwardOriginalToken": T(True),
        "outputClaimToHeaders": T([{"header": "x-jwt-sub", "claim": "sub"}]),
        "timeout": P(JWKS_TIMEOUT_TEST),
        "spaceDelimitedClaims": T(["roles"]),
    },
    "JWTHeader": {"name": T("x-token"), "prefix": T("Bearer ")},
    "ClaimToHeader": {"header": T("x-jwt-iss"), "claim": T("iss")},
    "Telemetry": {
        "selector": T({"matchLabels": {"version": "v2"}}),
        "targetRef": R({"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}),
        "targetRefs": R([{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}]),
        "tracing": P(OTEL_TEST),
        "metrics": P(
            f"{OVERRIDES_TEST}::test_the_docs_remove_tags_drops_grpc_response_status_from_requests_total_only"
        ),
        "accessLogging": T([{"providers": [{"name": "envoy"}], "match": {"mode": "SERVER"}}]),
    },
    "AccessLogging": {
        "match": T({"mode": "SERVER"}),
        "providers": T([{"name": "nobody"}]),
        "disabled": T(True),
        "filter": T({"expression": "response.code >= 400"}),
    },
    "AccessLogging.LogSelector": {"mode": T("CLIENT")},
    "AccessLogging.Filter": {"expression": T("response.code >= 500")},
    "ProviderRef": {"name": T("nobody")},
    "Metrics": {
        "providers": P(
            f"{OVERRIDES_TEST}::test_the_docs_remove_tags_drops_grpc_response_status_from_requests_total_only"
        ),
        "overrides": P(f"{OVERRIDES_TEST}::test_upserts_of_attributes_literals_and_an_existing_label"),
        "reportingInterval": R("10s"),
    },
    "MetricsOverrides": {
        "match": P(f"{OVERRIDES_TEST}::test_a_metric_disabled_for_the_client_side_only"),
        "disabled": P(f"{OVERRIDES_TEST}::test_all_metrics_disabled"),
        "tagOverrides": P(f"{OVERRIDES_TEST}::test_upserts_of_attributes_literals_and_an_existing_label"),
    },
    "MetricSelector": {
        "metric": P(f"{OVERRIDES_TEST}::test_a_metric_disabled_for_the_client_side_only"),
        "customMetric": P(f"{OVERRIDES_TEST}::test_a_custom_metric_names_a_standard_one"),
        "mode": P(f"{OVERRIDES_TEST}::test_the_docs_custom_tags_read_the_peer_each_side_knows"),
    },
    "MetricsOverrides.TagOverride": {
        "operation": P(
            f"{OVERRIDES_TEST}::test_the_docs_remove_tags_drops_grpc_response_status_from_requests_total_only"
        ),
        "value": P(f"{OVERRIDES_TEST}::test_upserts_of_attributes_literals_and_an_existing_label"),
    },
    "Tracing": {
        "match": P("tests/test_model_telemetry.py::test_tracing_entries_match_a_side"),
        "providers": P(OTEL_TEST),
        "randomSamplingPercentage": P(OTEL_TEST),
        "disableSpanReporting": P("tests/test_generate_telemetry.py::test_no_tracing"),
        "customTags": P(OTEL_TEST),
        "useRequestIdForTraceSampling": R(False),
        "enableIstioTags": R(True),
    },
    "Tracing.TracingSelector": {"mode": P("tests/test_model_telemetry.py::test_tracing_entries_match_a_side")},
    "Tracing.CustomTag": {"literal": P(OTEL_TEST), "environment": P(OTEL_TEST), "header": P(OTEL_TEST)},
    "Tracing.Literal": {"value": P(OTEL_TEST)},
    "Tracing.Environment": {"name": P(OTEL_TEST), "defaultValue": P(OTEL_TEST)},
    "Tracing.RequestHeader": {"name": P(OTEL_TEST), "defaultValue": P(OTEL_TEST)},
    "EnvoyFilter": {
        "workloadSelector": T({"labels": {"app": "reviews"}}),  # productpage's clusters are then as generated
        "configPatches": T(
            [{"applyTo": "CLUSTER", "patch": {"operation": "MERGE", "value": {"connect_timeout": "8s"}}}]
        ),
        "priority": P(f"{EF_TEST}::test_root_namespace_filters_apply_first_then_by_priority"),
        "targetRefs": R([{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}]),
    },
    "EnvoyFilter.EnvoyConfigObjectPatch": {
        "applyTo": P(f"{EF_TEST}::test_listener_merge_remove_and_add_by_port_and_name"),
        "match": T({"context": "SIDECAR_INBOUND"}),
        "patch": T({"operation": "REMOVE"}),
    },
    "EnvoyFilter.EnvoyConfigObjectMatch": {
        "context": T("ANY"),  # the inbound cluster of 9080 too
        "proxy": T({"metadata": {"TIER": "a"}}),
        "listener": P(f"{EF_TEST}::test_listener_merge_remove_and_add_by_port_and_name"),
        "routeConfiguration": P(f"{EF_TEST}::test_route_configuration_merge_by_port_and_name"),
        "cluster": T({"portNumber": 5432}),
    },
    "EnvoyFilter.ProxyMatch": {"proxyVersion": T("^9\\."), "metadata": T({"TIER": "a"})},
    "EnvoyFilter.ClusterMatch": {
        "portNumber": T(5432),
        "service": T(REVIEWS),
        "subset": T("v1"),
        "name": T("PassthroughCluster"),
    },
    "EnvoyFilter.Patch": {
        "operation": P(f"{EF_TEST}::test_cluster_remove_and_add"),
        "value": T({"connect_timeout": "9s"}),
        "filterClass": R("AUTHZ"),
    },
    "EnvoyFilter.ListenerMatch": {
        "portNumber": EF_LUA,
        "name": P(f"{EF_TEST}::test_listener_merge_remove_and_add_by_port_and_name"),
        "filterChain": EF_CHAIN,
        "listenerFilter": R("envoy.filters.listener.tls_inspector"),
    },
    "EnvoyFilter.ListenerMatch.FilterChainMatch": {
        "name": EF_CHAIN,
        "sni": P(f"{EF_TEST}::test_docs_hcm_tweaks_merge_the_gateway_hcm_of_its_sni_chain"),
        "transportProtocol": EF_CHAIN,
        "applicationProtocols": P(f"{EF_TEST}::test_application_protocols_and_destination_port_match_chains"),
        "filter": P(f"{EF_TEST}::test_network_filter_operations_relative_to_tcp_proxy"),
        "destinationPort": P(f"{EF_TEST}::test_application_protocols_and_destination_port_match_chains"),
    },
    "EnvoyFilter.ListenerMatch.FilterMatch": {
        "name": P(f"{EF_TEST}::test_network_filter_operations_relative_to_tcp_proxy"),
        "subFilter": P(f"{EF_TEST}::test_http_filter_operations_relative_to_the_router"),
    },
    "EnvoyFilter.ListenerMatch.SubFilterMatch": {
        "name": P(f"{EF_TEST}::test_http_filter_operations_relative_to_the_router"),
    },
    "EnvoyFilter.RouteConfigurationMatch": {
        "portNumber": P(f"{EF_TEST}::test_route_configuration_merge_by_port_and_name"),
        "portName": EF_GATEWAY,
        "gateway": EF_GATEWAY,
        "vhost": P(f"{EF_TEST}::test_virtual_host_merge_remove_and_add"),
        "name": P(f"{EF_TEST}::test_route_configuration_merge_by_port_and_name"),
    },
    "EnvoyFilter.RouteConfigurationMatch.VirtualHostMatch": {
        "name": P(f"{EF_TEST}::test_virtual_host_merge_remove_and_add"),
        "route": EF_ROUTE,
        "domainName": P(f"{EF_TEST}::test_virtual_host_merge_remove_and_add"),
    },
    "EnvoyFilter.RouteConfigurationMatch.RouteMatch": {"name": EF_ROUTE, "action": EF_ROUTE},
}
