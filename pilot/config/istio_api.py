"""The fields of Istio's API messages that meshplane reads, as their JSON (YAML) names.

Taken from istio/api
``networking/v1alpha3/{virtual_service,destination_rule,service_entry,workload_entry,workload_group,gateway,sidecar}.proto``
and ``security/v1beta1/{peer_authentication,authorization_policy,request_authentication,jwt}.proto``,
``telemetry/v1alpha1/telemetry.proto`` and ``type/v1beta1/selector.proto``
(the current API: v1 and v1beta1 are the same messages). Messages meshplane rejects as a whole (``delegate``,
``tunnel``, ...) are listed only as the field that holds them.

Validation reads it (``Fields.open(..., message=...)``): a field Istio has that the validator does not read is
"not supported by meshplane yet", a field Istio removed says so and what replaces it, and only a name that is in
neither gets "unknown field". ``tests/test_istio_field_coverage.py`` checks that every field here is translated by
a generator or rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ISTIO_MESSAGES", "REMOVED_FIELDS", "UNSUPPORTED_REASONS", "fields_except", "unsupported_message"]

ISTIO_MESSAGES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        # networking/v1alpha3/virtual_service.proto
        "VirtualService": ("hosts", "gateways", "http", "tls", "tcp", "exportTo"),
        "Destination": ("host", "subset", "port"),
        "PortSelector": ("number",),
        "HTTPRoute": (
            "name",
            "match",
            "route",
            "redirect",
            "directResponse",
            "delegate",
            "rewrite",
            "timeout",
            "retries",
            "fault",
            "mirror",
            "mirrors",
            "mirrorPercent",
            "mirrorPercentage",
            "corsPolicy",
            "headers",
        ),
        "Headers": ("request", "response"),
        "Headers.HeaderOperations": ("set", "add", "remove"),
        "HTTPMatchRequest": (
            "name",
            "uri",
            "scheme",
            "method",
            "authority",
            "headers",
            "port",
            "sourceLabels",
            "gateways",
            "queryParams",
            "ignoreUriCase",
            "withoutHeaders",
            "sourceNamespace",
            "statPrefix",
        ),
        "HTTPRouteDestination": ("destination", "weight", "headers"),
        "HTTPRedirect": ("uri", "authority", "port", "derivePort", "scheme", "redirectCode"),
        "HTTPDirectResponse": ("status", "body"),
        "HTTPBody": ("string", "bytes"),
        "HTTPRewrite": ("uri", "authority", "uriRegexRewrite"),
        "RegexRewrite": ("match", "rewrite"),
        "StringMatch": ("exact", "prefix", "regex"),
        "CorsPolicy": (
            "allowOrigin",
            "allowOrigins",
            "allowMethods",
            "allowHeaders",
            "exposeHeaders",
            "maxAge",
            "allowCredentials",
            "unmatchedPreflights",
        ),
        "HTTPRetry": (
            "attempts",
            "perTryTimeout",
            "retryOn",
            "retryRemoteLocalities",
            "retryIgnorePreviousHosts",
            "backoff",
        ),
        "HTTPFaultInjection": ("delay", "abort"),
        "HTTPFaultInjection.Delay": ("percent", "fixedDelay", "exponentialDelay", "percentage"),
        "HTTPFaultInjection.Abort": ("httpStatus", "grpcStatus", "http2Error", "percentage"),
        "HTTPMirrorPolicy": ("destination", "percentage"),
        "Percent": ("value",),
        "TCPRoute": ("match", "route"),
        "TLSRoute": ("match", "route"),
        "L4MatchAttributes": ("destinationSubnets", "port", "sourceLabels", "gateways", "sourceNamespace"),
        "TLSMatchAttributes": (
            "sniHosts",
            "destinationSubnets",
            "port",
            "sourceLabels",
            "gateways",
            "sourceNamespace",
        ),
        "RouteDestination": ("destination", "weight"),
        # networking/v1alpha3/gateway.proto
        "Gateway": ("servers", "selector"),
        "Server": ("port", "bind", "hosts", "tls", "defaultEndpoint", "name"),
        "Port": ("number", "protocol", "name", "targetPort"),
        "ServerTLSSettings": (
            "httpsRedirect",
            "mode",
            "serverCertificate",
            "privateKey",
            "caCertificates",
            "caCrl",
            "credentialName",
            "credentialNames",
            "tlsCertificates",
            "subjectAltNames",
            "verifyCertificateSpki",
            "verifyCertificateHash",
            "minProtocolVersion",
            "maxProtocolVersion",
            "cipherSuites",
        ),
        # networking/v1alpha3/destination_rule.proto
        "DestinationRule": ("host", "trafficPolicy", "subsets", "exportTo", "workloadSelector"),
        "TrafficPolicy": (
            "loadBalancer",
            "connectionPool",
            "outlierDetection",
            "tls",
            "portLevelSettings",
            "tunnel",
            "proxyProtocol",
            "retryBudget",
        ),
        "TrafficPolicy.PortTrafficPolicy": ("port", "loadBalancer", "connectionPool", "outlierDetection", "tls"),
        "TrafficPolicy.ProxyProtocol": ("version",),
        "TrafficPolicy.RetryBudget": ("percent", "minRetryConcurrency"),
        "Subset": ("name", "labels", "trafficPolicy"),
        "LoadBalancerSettings": ("simple", "consistentHash", "localityLbSetting", "warmupDurationSecs", "warmup"),
        "LoadBalancerSettings.ConsistentHashLB": (
            "httpHeaderName",
            "httpCookie",
            "useSourceIp",
            "httpQueryParameterName",
            "ringHash",
            "maglev",
            "minimumRingSize",
        ),
        "LoadBalancerSettings.ConsistentHashLB.HTTPCookie": ("name", "path", "ttl"),
        "LoadBalancerSettings.ConsistentHashLB.RingHash": ("minimumRingSize",),
        "LoadBalancerSettings.ConsistentHashLB.MagLev": ("tableSize",),
        "LocalityLoadBalancerSetting": ("distribute", "failover", "failoverPriority", "enabled"),
        "LocalityLoadBalancerSetting.Distribute": ("from", "to"),
        "LocalityLoadBalancerSetting.Failover": ("from", "to"),
        "WarmupConfiguration": ("duration", "minimumPercent", "aggression"),
        "ConnectionPoolSettings": ("tcp", "http"),
        "ConnectionPoolSettings.TCPSettings": (
            "maxConnections",
            "connectTimeout",
            "tcpKeepalive",
            "maxConnectionDuration",
            "idleTimeout",
        ),
        "ConnectionPoolSettings.TCPSettings.TcpKeepalive": ("probes", "time", "interval"),
        "ConnectionPoolSettings.HTTPSettings": (
            "http1MaxPendingRequests",
            "http2MaxRequests",
            "maxRequestsPerConnection",
            "maxRetries",
            "idleTimeout",
            "h2UpgradePolicy",
            "useClientProtocol",
            "maxConcurrentStreams",
        ),
        "OutlierDetection": (
            "consecutiveErrors",
            "splitExternalLocalOriginErrors",
            "consecutiveLocalOriginFailures",
            "consecutiveGatewayErrors",
            "consecutive5xxErrors",
            "interval",
            "baseEjectionTime",
            "maxEjectionPercent",
            "minHealthPercent",
        ),
        "ClientTLSSettings": (
            "mode",
            "clientCertificate",
            "privateKey",
            "caCertificates",
            "credentialName",
            "subjectAltNames",
            "sni",
            "insecureSkipVerify",
            "caCrl",
        ),
        # networking/v1alpha3/service_entry.proto, workload_entry.proto
        "ServiceEntry": (
            "hosts",
            "addresses",
            "ports",
            "location",
            "resolution",
            "endpoints",
            "workloadSelector",
            "exportTo",
            "subjectAltNames",
        ),
        "ServicePort": ("number", "protocol", "name", "targetPort"),
        "WorkloadSelector": ("labels",),
        # networking/v1alpha3/envoy_filter.proto
        "EnvoyFilter": ("workloadSelector", "configPatches", "priority", "targetRefs"),
        "EnvoyFilter.EnvoyConfigObjectPatch": ("applyTo", "match", "patch"),
        "EnvoyFilter.EnvoyConfigObjectMatch": ("context", "proxy", "listener", "routeConfiguration", "cluster"),
        "EnvoyFilter.ProxyMatch": ("proxyVersion", "metadata"),
        "EnvoyFilter.ListenerMatch": ("portNumber", "filterChain", "listenerFilter", "name"),
        "EnvoyFilter.ListenerMatch.FilterChainMatch": (
            "name",
            "sni",
            "transportProtocol",
            "applicationProtocols",
            "filter",
            "destinationPort",
        ),
        "EnvoyFilter.ListenerMatch.FilterMatch": ("name", "subFilter"),
        "EnvoyFilter.ListenerMatch.SubFilterMatch": ("name",),
        "EnvoyFilter.RouteConfigurationMatch": ("portNumber", "portName", "gateway", "vhost", "name"),
        "EnvoyFilter.RouteConfigurationMatch.VirtualHostMatch": ("name", "route", "domainName"),
        "EnvoyFilter.RouteConfigurationMatch.RouteMatch": ("name", "action"),
        "EnvoyFilter.ClusterMatch": ("portNumber", "service", "subset", "name"),
        "EnvoyFilter.Patch": ("operation", "value", "filterClass"),
        "WorkloadEntry": ("address", "ports", "labels", "network", "locality", "weight", "serviceAccount"),
        # networking/v1alpha3/workload_group.proto
        "WorkloadGroup": ("metadata", "template", "probe"),
        "WorkloadGroup.ObjectMeta": ("labels", "annotations"),
        # networking/v1alpha3/sidecar.proto
        "Sidecar": ("workloadSelector", "ingress", "egress", "inboundConnectionPool", "outboundTrafficPolicy"),
        "IstioIngressListener": ("port", "bind", "captureMode", "defaultEndpoint", "tls", "connectionPool"),
        "IstioEgressListener": ("port", "bind", "captureMode", "hosts"),
        "SidecarPort": ("number", "protocol", "name", "targetPort"),
        "OutboundTrafficPolicy": ("mode", "egressProxy"),
        # networking/v1beta1/proxy_config.proto
        "ProxyConfig": ("selector", "concurrency", "environmentVariables", "image"),
        "ProxyImage": ("imageType",),
        # security/v1beta1/peer_authentication.proto, authorization_policy.proto; type/v1beta1/selector.proto
        "PeerAuthentication": ("selector", "mtls", "portLevelMtls"),
        "PeerAuthentication.MutualTLS": ("mode",),
        "type.WorkloadSelector": ("matchLabels",),
        "AuthorizationPolicy": ("selector", "targetRef", "targetRefs", "rules", "action", "provider"),
        "AuthorizationPolicy.ExtensionProvider": ("name",),
        "Rule": ("from", "to", "when"),
        "Rule.From": ("source",),
        "Rule.To": ("operation",),
        "Source": (
            "principals",
            "notPrincipals",
            "requestPrincipals",
            "notRequestPrincipals",
            "namespaces",
            "notNamespaces",
            "serviceAccounts",
            "notServiceAccounts",
            "ipBlocks",
            "notIpBlocks",
            "remoteIpBlocks",
            "notRemoteIpBlocks",
        ),
        "Operation": ("hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"),
        "Condition": ("key", "values", "notValues"),
        # security/v1beta1/request_authentication.proto, jwt.proto
        "RequestAuthentication": ("selector", "targetRef", "targetRefs", "jwtRules"),
        "JWTRule": (
            "issuer",
            "audiences",
            "jwksUri",
            "jwks",
            "fromHeaders",
            "fromParams",
            "outputPayloadToHeader",
            "fromCookies",
            "forwardOriginalToken",
            "outputClaimToHeaders",
            "timeout",
            "spaceDelimitedClaims",
        ),
        "JWTHeader": ("name", "prefix"),
        "ClaimToHeader": ("header", "claim"),
        # telemetry/v1alpha1/telemetry.proto (v1 is the same message)
        "Telemetry": ("selector", "targetRef", "targetRefs", "tracing", "metrics", "accessLogging"),
        "Tracing": (
            "match",
            "providers",
            "randomSamplingPercentage",
            "disableSpanReporting",
            "customTags",
            "useRequestIdForTraceSampling",
            "enableIstioTags",
        ),
        "Tracing.TracingSelector": ("mode",),
        "Tracing.CustomTag": ("literal", "environment", "header"),
        "Tracing.Literal": ("value",),
        "Tracing.Environment": ("name", "defaultValue"),
        "Tracing.RequestHeader": ("name", "defaultValue"),
        "ProviderRef": ("name",),
        "Metrics": ("providers", "overrides", "reportingInterval"),
        "MetricSelector": ("metric", "customMetric", "mode"),
        "MetricsOverrides": ("match", "disabled", "tagOverrides"),
        "MetricsOverrides.TagOverride": ("operation", "value"),
        "AccessLogging": ("match", "providers", "disabled", "filter"),
        "AccessLogging.LogSelector": ("mode",),
        "AccessLogging.Filter": ("expression",),
    }
)

# Fields Istio's protos once had and now reserve: an old YAML with them gets what replaces them.
REMOVED_FIELDS: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("HTTPRoute", "websocketUpgrade"): "WebSocket upgrades need no setting any more",
        ("HTTPRoute", "appendHeaders"): "use headers.request.add",
        ("HTTPRoute", "removeResponseHeaders"): "use headers.response.remove",
        ("HTTPRoute", "appendResponseHeaders"): "use headers.response.add",
        ("HTTPRoute", "removeRequestHeaders"): "use headers.request.remove",
        ("HTTPRoute", "appendRequestHeaders"): "use headers.request.add",
        ("HTTPFaultInjection.Abort", "percent"): "use percentage: {value: <0-100>}",
    }
)

# Why a field is not supported yet, where there is more to say than "not supported by meshplane yet".
_TARGET_REF = (
    "it attaches a policy to Gateway API gateways or waypoint Services, which meshplane does not have; select the "
    "workloads with `selector` instead"
)
UNSUPPORTED_REASONS: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("AuthorizationPolicy", "targetRef"): _TARGET_REF,
        ("AuthorizationPolicy", "targetRefs"): _TARGET_REF,
        ("RequestAuthentication", "targetRef"): _TARGET_REF,
        ("RequestAuthentication", "targetRefs"): _TARGET_REF,
        ("Telemetry", "targetRef"): _TARGET_REF,
        ("Telemetry", "targetRefs"): _TARGET_REF,
        ("Metrics", "reportingInterval"): "it is the reporting interval of Istio's TCP metrics, and Mixer produces "
        "no TCP metrics",
        ("Tracing", "useRequestIdForTraceSampling"): "Envoy's default (true) is used: sampling follows the "
        "x-request-id",
        ("Tracing", "enableIstioTags"): "Istio's own span tags (istio.canonical_service, ...) are not added; use "
        "customTags",
        ("WorkloadEntry", "network"): "there is no multi-network support (every endpoint must be reachable "
        "directly); leave network out",
        ("WorkloadGroup", "probe"): "the health of auto-registered workloads is not checked: a connected proxy's "
        "WorkloadEntry is an endpoint until it disconnects",
        ("HTTPRoute", "mirrorPercent"): "deprecated in Istio: use mirrorPercentage",
        ("IstioEgressListener", "bind"): "egress listeners are reached through iptables capture, not bound to an "
        "address",
        ("IstioIngressListener", "bind"): "ingress listeners are reached through iptables capture (chains of "
        "virtualInbound matched by port, where Istio ignores bind too), not bound to an address",
        ("TrafficPolicy", "tunnel"): "tunneling TCP through an HTTP CONNECT or POST proxy (Envoy's tcp_proxy "
        "tunneling_config, which Istio sets on TCP ports only) is not translated yet",
        ("OutlierDetection", "consecutiveErrors"): "deprecated in Istio, whose outlier detection no longer reads "
        "it: use consecutive5xxErrors (5xx responses) or consecutiveGatewayErrors (502, 503, 504)",
        ("EnvoyFilter", "targetRefs"): _TARGET_REF.replace("a policy", "an EnvoyFilter").replace(
            "`selector`", "`workloadSelector`"
        ),
        ("EnvoyFilter.ListenerMatch", "listenerFilter"): "applyTo LISTENER_FILTER is not supported either",
        ("EnvoyFilter.Patch", "filterClass"): "place the filter with INSERT_BEFORE / INSERT_AFTER / INSERT_FIRST "
        "relative to a named filter instead",
        # Istio rejects both as well ("exponentialDelay not supported yet", "HTTP/2 abort fault injection not
        # supported yet"); Envoy's fault filter has neither
        ("HTTPFaultInjection.Delay", "exponentialDelay"): "Envoy's fault filter delays by a fixed duration only "
        "(Istio rejects exponentialDelay too): use fixedDelay",
        ("HTTPFaultInjection.Abort", "http2Error"): "Envoy's fault filter aborts with an HTTP or gRPC status, it "
        "cannot reset the stream with an HTTP/2 error code (Istio rejects http2Error too): use httpStatus or "
        "grpcStatus",
    }
)


def unsupported_message(message: str, name: str) -> str | None:
    """The message for field ``name`` of Istio message ``message`` when the validator does not read it: "not
    supported by meshplane yet" (with the reason, if any), what replaces a removed field, or None for a name
    Istio does not have (an unknown field)."""
    if name in ISTIO_MESSAGES.get(message, ()):
        reason = UNSUPPORTED_REASONS.get((message, name))
        return "not supported by meshplane yet" + (f": {reason}" if reason else "")
    replacement = REMOVED_FIELDS.get((message, name))
    if replacement is not None:
        return f"{name!r} was removed from Istio's API and is not supported by meshplane: {replacement}"
    return None


def fields_except(message: str, *unsupported: str) -> tuple[str, ...]:
    """The fields of ``message`` a validator reads: all of Istio's but ``unsupported`` (which must be Istio's)."""
    fields = ISTIO_MESSAGES[message]
    unknown = set(unsupported) - set(fields)
    if unknown:
        raise ValueError(f"{message} has no field {sorted(unknown)}")
    return tuple(name for name in fields if name not in unsupported)
