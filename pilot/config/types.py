"""Validated Istio networking config as frozen dataclasses.

Every kind Pilot understands is parsed and validated (see ``validate_*.py``) into these types; raw YAML never
reaches the model or the generators. Field names are Istio's, in snake_case. Durations are seconds as ``float``.
Optional fields are ``None`` when the YAML did not set them, so that builders can apply Istio's defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from pilot.config.origin import Origin

__all__ = [
    "EMPTY_LABELS",
    "GRPC_STATUS_NAMES",
    "MIXER_PROVIDER",
    "Abort",
    "AccessList",
    "AccessListEntryType",
    "AccessListMode",
    "AuthorizationAction",
    "AuthorizationCondition",
    "AuthorizationOperation",
    "AuthorizationPolicy",
    "AuthorizationRule",
    "AuthorizationSource",
    "ClaimToHeader",
    "ClientTLSSettings",
    "ConfigKey",
    "ConfigMeta",
    "ConnectionPool",
    "ConsistentHash",
    "CorsPolicy",
    "Delay",
    "Delegate",
    "Destination",
    "DestinationRule",
    "EnvoyFilter",
    "EnvoyFilterApplyTo",
    "EnvoyFilterClusterMatch",
    "EnvoyFilterContext",
    "EnvoyFilterFilterChainMatch",
    "EnvoyFilterListenerMatch",
    "EnvoyFilterOperation",
    "EnvoyFilterPatch",
    "EnvoyFilterProxyMatch",
    "EnvoyFilterRouteMatch",
    "Fault",
    "Gateway",
    "GatewayPort",
    "GatewayServer",
    "GatewayTlsMode",
    "H2UpgradePolicy",
    "HTTPDirectResponse",
    "HTTPMatchRequest",
    "HTTPRedirect",
    "HTTPRetry",
    "HTTPRewrite",
    "HTTPRoute",
    "HTTPRouteDestination",
    "HeaderOperations",
    "Headers",
    "HttpCookie",
    "JwtHeader",
    "JwtRule",
    "Kind",
    "L4MatchAttributes",
    "LoadBalancer",
    "LocalityDistribute",
    "LocalityFailover",
    "LocalityLbSetting",
    "MetricTagOverride",
    "MetricsOverride",
    "Mirror",
    "MixerPolicy",
    "MtlsMode",
    "OutlierDetection",
    "PeerAuthentication",
    "PortTrafficPolicy",
    "Protocol",
    "ProxyConfig",
    "ProxyProtocolVersion",
    "RateLimit",
    "RateLimitOverride",
    "RegexRewrite",
    "RequestAuthentication",
    "Resolution",
    "Resource",
    "RetryBudget",
    "RouteDestination",
    "ServerTLSSettings",
    "ServiceEntry",
    "ServiceEntryEndpoint",
    "ServicePort",
    "Sidecar",
    "SidecarEgressListener",
    "SidecarHost",
    "SidecarIngressListener",
    "SidecarOutboundMode",
    "SidecarPort",
    "StatusCodeFilter",
    "StringMatch",
    "Subset",
    "TCPRoute",
    "TLSMatchAttributes",
    "TLSRoute",
    "Telemetry",
    "TelemetryAccessLogging",
    "TelemetryMetrics",
    "TelemetryTracing",
    "TlsMode",
    "TracingCustomTag",
    "TrafficPolicy",
    "VirtualService",
    "Warmup",
    "WorkloadEntry",
    "WorkloadGroup",
    "WorkloadMode",
    "key_order",
    "labels_match",
    "sorted_by_key",
]

_V = TypeVar("_V")
Labels = Mapping[str, str]
EMPTY_LABELS: Labels = MappingProxyType({})


def labels_match(selector: Labels, labels: Labels) -> bool:
    """True when every selector label is present with the same value (an empty selector matches all): how a
    ``selector``/``workloadSelector`` of any kind selects a workload."""
    return all(labels.get(k) == v for k, v in selector.items())


def frozen_labels(labels: Mapping[str, str] | None) -> Labels:
    """A read-only copy of a label map (dataclasses stay hashable by identity of their contents' tuples)."""
    return MappingProxyType(dict(sorted((labels or {}).items())))


class Kind(StrEnum):
    SERVICE_ENTRY = "ServiceEntry"
    WORKLOAD_ENTRY = "WorkloadEntry"
    WORKLOAD_GROUP = "WorkloadGroup"
    DESTINATION_RULE = "DestinationRule"
    VIRTUAL_SERVICE = "VirtualService"
    PEER_AUTHENTICATION = "PeerAuthentication"
    AUTHORIZATION_POLICY = "AuthorizationPolicy"
    REQUEST_AUTHENTICATION = "RequestAuthentication"
    ACCESS_LIST = "AccessList"  # mixer.meshplane.io
    RATE_LIMIT = "RateLimit"  # mixer.meshplane.io
    GATEWAY = "Gateway"
    SIDECAR = "Sidecar"
    TELEMETRY = "Telemetry"  # telemetry.istio.io
    ENVOY_FILTER = "EnvoyFilter"
    PROXY_CONFIG = "ProxyConfig"


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class ConfigKey:
    """Identity of a config resource: unique per kind, namespace and name."""

    kind: str
    namespace: str
    name: str
    # computed once: every index of the store and the snapshot is keyed by ConfigKeys (a large mesh's start hashed
    # them over a hundred thousand times through the generated __hash__)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.kind, self.namespace, self.name)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[Any, tuple[str, str, str]]:
        """Pickled without its hash: string hashes differ between processes (``pilot.parse_ahead``)."""
        return _config_key, (self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


def _config_key(kind: str, namespace: str, name: str) -> ConfigKey:
    return ConfigKey(kind=kind, namespace=namespace, name=name)


def key_order(key: ConfigKey) -> tuple[str, str, str]:
    """ConfigKey's order as a plain tuple, for ``sorted(..., key=key_order)``: tuples compare in C, the dataclass's
    generated ``__lt__`` in Python (sorting a large mesh's keys by it took tens of milliseconds per snapshot)."""
    return (key.kind, key.namespace, key.name)


def sorted_by_key(mapping: Mapping[ConfigKey, _V]) -> dict[ConfigKey, _V]:
    """The entries of ``mapping`` in ConfigKey order."""
    return {key: mapping[key] for key in sorted(mapping, key=key_order)}


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigMeta:
    """A resource's identity and where it came from (its origin is named in every error and in /debug/configz)."""

    key: ConfigKey
    origin: Origin  # for a file: the line of the document's start
    labels: Labels = field(default_factory=lambda: MappingProxyType({}))
    content_hash: str = ""  # sha256 of the normalized spec: equal hash == same config

    @property
    def file(self) -> str:
        """The file the resource was read from ("" for another source): relative paths in it start there."""
        return self.origin.file


# --------------------------------------------------------------------------------------------------------------
# ServiceEntry / WorkloadEntry: the registry
# --------------------------------------------------------------------------------------------------------------


class Protocol(StrEnum):
    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    GRPC = "GRPC"
    TCP = "TCP"
    TLS = "TLS"
    HTTPS = "HTTPS"
    MONGO = "MONGO"
    REDIS = "REDIS"
    MYSQL = "MYSQL"
    UNKNOWN = "UNKNOWN"  # protocol not given and not derivable from the port name

    @property
    def is_http(self) -> bool:
        return self in (Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC)

    @property
    def is_http2(self) -> bool:
        return self in (Protocol.HTTP2, Protocol.GRPC)


class Resolution(StrEnum):
    NONE = "NONE"
    STATIC = "STATIC"
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServicePort:
    number: int
    name: str
    protocol: Protocol
    target_port: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceEntryEndpoint:
    """An inline endpoint of a ServiceEntry (WorkloadEntry-shaped, without a sidecar of ours)."""

    address: str
    ports: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # port name -> port on the endpoint
    labels: Labels = field(default_factory=lambda: MappingProxyType({}))
    weight: int | None = None
    locality: str = ""
    service_account: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceEntry:
    meta: ConfigMeta
    hosts: tuple[str, ...]
    addresses: tuple[str, ...] = ()  # VIPs: IP addresses or CIDR blocks, as written
    ports: tuple[ServicePort, ...] = ()
    location: Literal["MESH_EXTERNAL", "MESH_INTERNAL"] = "MESH_EXTERNAL"
    resolution: Resolution = Resolution.NONE
    endpoints: tuple[ServiceEntryEndpoint, ...] = ()
    workload_selector: Labels | None = None  # None: no selector; {} is not allowed by validation
    export_to: tuple[str, ...] = ()
    subject_alt_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadEntry:
    """A workload with a meshplane sidecar: a pod, ``address`` its pod IP (where peers reach its sidecar's inbound
    capture on every service port it serves)."""

    meta: ConfigMeta
    address: str
    ports: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # service port name -> app port
    labels: Labels = field(default_factory=lambda: MappingProxyType({}))
    weight: int | None = None
    locality: str = ""
    service_account: str = ""
    # not Istio's field: the workload a Kubernetes pod belongs to (its Deployment's name, ``pilot.kube``), which
    # Istio's metrics call ``source_workload``; "" for a WorkloadEntry, whose workload is its own name
    workload_name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadGroup:
    """Istio's WorkloadGroup: the template of the WorkloadEntry created for each proxy that connects with node
    metadata ``AUTO_REGISTER_GROUP: <name>`` in the group's namespace (``pilot.autoregistration``)."""

    meta: ConfigMeta
    labels: Labels = field(default_factory=lambda: MappingProxyType({}))  # metadata.labels: over the template's
    annotations: Labels = field(default_factory=lambda: MappingProxyType({}))  # metadata.annotations
    ports: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # template.ports
    template_labels: Labels = field(default_factory=lambda: MappingProxyType({}))
    weight: int | None = None
    locality: str = ""
    service_account: str = ""


# --------------------------------------------------------------------------------------------------------------
# DestinationRule
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpCookie:
    """ConsistentHashLB.HTTPCookie: hash on a cookie; Envoy generates it (with ``ttl``) when the request has none."""

    name: str
    path: str = ""
    ttl: float = 0.0  # seconds; Istio requires it (0s: a session cookie)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsistentHash:
    """LoadBalancerSettings.ConsistentHashLB: the hash key (at most one of the four) and the hash algorithm."""

    http_header_name: str = ""
    http_cookie: HttpCookie | None = None
    use_source_ip: bool = False
    http_query_parameter_name: str = ""
    algorithm: Literal["RING_HASH", "MAGLEV"] = "RING_HASH"
    minimum_ring_size: int = 0  # ringHash.minimumRingSize or the deprecated top-level one; 0: not set
    table_size: int = 0  # maglev.tableSize (a prime)
    deprecated_ring_size: bool = False  # set through the deprecated top-level minimumRingSize (Istio's 1024 default)


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalityDistribute:
    """LocalityLoadBalancerSetting.Distribute: clients in ``from_`` send ``to`` (locality -> percent) of traffic."""

    from_: str
    to: tuple[tuple[str, int], ...]  # in the order written (Istio matches wildcards in that order)


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalityFailover:
    from_: str  # a region
    to: str  # a region


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalityLbSetting:
    distribute: tuple[LocalityDistribute, ...] = ()
    failover: tuple[LocalityFailover, ...] = ()
    failover_priority: tuple[str, ...] = ()  # label names, or ``label=value`` overrides
    enabled: bool | None = None  # None: not given (enabled)


@dataclass(frozen=True, slots=True, kw_only=True)
class Warmup:
    """Envoy's slow start (``warmupDurationSecs``, or ``warmup`` with its ramp settings)."""

    duration: float
    minimum_percent: float | None = None
    aggression: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadBalancer:
    simple: Literal["UNSPECIFIED", "ROUND_ROBIN", "LEAST_REQUEST", "LEAST_CONN", "RANDOM", "PASSTHROUGH"] = (
        "UNSPECIFIED"
    )
    consistent_hash: ConsistentHash | None = None
    locality_lb_setting: LocalityLbSetting | None = None
    warmup: Warmup | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionPool:
    # tcp
    max_connections: int | None = None
    connect_timeout: float | None = None
    tcp_keepalive_time: float | None = None
    tcp_keepalive_interval: float | None = None
    tcp_keepalive_probes: int | None = None
    max_connection_duration: float | None = None  # tcp.maxConnectionDuration
    tcp_idle_timeout: float | None = None  # tcp.idleTimeout (http.idleTimeout wins on the cluster)
    # http
    http1_max_pending_requests: int | None = None
    http2_max_requests: int | None = None
    max_requests_per_connection: int | None = None
    max_retries: int | None = None
    idle_timeout: float | None = None
    max_concurrent_streams: int | None = None
    h2_upgrade_policy: H2UpgradePolicy = "DEFAULT"
    use_client_protocol: bool = False


H2UpgradePolicy = Literal["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryBudget:
    """TrafficPolicy ``retryBudget``: concurrent retries as a share of active requests."""

    percent: float = 20.0  # of active plus pending requests (Istio's documented default)
    min_retry_concurrency: int = 3


ProxyProtocolVersion = Literal["V1", "V2"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OutlierDetection:
    consecutive_5xx_errors: int | None = None
    consecutive_gateway_errors: int | None = None
    split_external_local_origin_errors: bool = False
    consecutive_local_origin_failures: int | None = None
    interval: float | None = None
    base_ejection_time: float | None = None
    max_ejection_percent: int | None = None
    min_health_percent: int | None = None


TlsMode = Literal["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTLSSettings:
    """Istio's ClientTLSSettings (DestinationRule ``tls``): how a sidecar originates TLS to the destination.

    File paths are read by the client's Envoy; ``credential_name`` (instead of the files) is a Secret of the client
    proxy's namespace that Citadel serves over SDS.
    """

    mode: TlsMode
    client_certificate: str = ""  # MUTUAL: the client certificate chain file
    private_key: str = ""  # MUTUAL: its key file
    ca_certificates: str = ""  # SIMPLE/MUTUAL: trusted CAs file; empty: the system's trust store
    ca_crl: str = ""  # SIMPLE/MUTUAL: certificate revocation list file
    subject_alt_names: tuple[str, ...] = ()  # accepted server SANs (ISTIO_MUTUAL: replaces the service accounts)
    sni: str = ""
    insecure_skip_verify: bool = False  # SIMPLE/MUTUAL: do not verify the server certificate at all
    credential_name: str = ""  # SIMPLE/MUTUAL: the Secret with the client certificate, key and CAs (no files)


@dataclass(frozen=True, slots=True, kw_only=True)
class PortTrafficPolicy:
    port: int
    load_balancer: LoadBalancer | None = None
    connection_pool: ConnectionPool | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficPolicy:
    load_balancer: LoadBalancer | None = None
    connection_pool: ConnectionPool | None = None
    outlier_detection: OutlierDetection | None = None
    port_level_settings: tuple[PortTrafficPolicy, ...] = ()
    tls: ClientTLSSettings | None = None
    proxy_protocol: ProxyProtocolVersion | None = None  # proxyProtocol.version
    retry_budget: RetryBudget | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Subset:
    name: str
    labels: Labels = field(default_factory=lambda: MappingProxyType({}))
    traffic_policy: TrafficPolicy | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationRule:
    meta: ConfigMeta
    host: str  # as written (may be a short name); see model for resolution to an FQDN
    traffic_policy: TrafficPolicy | None = None
    subsets: tuple[Subset, ...] = ()
    export_to: tuple[str, ...] = ()
    # workloadSelector.matchLabels (Istio 1.13+): the rule applies to these client workloads of its namespace only
    workload_selector: Labels | None = None


# --------------------------------------------------------------------------------------------------------------
# VirtualService
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StringMatch:
    """Exactly one of exact / prefix / regex is set (Istio's StringMatch oneof)."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPMatchRequest:
    name: str = ""
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: Mapping[str, StringMatch] = field(default_factory=lambda: MappingProxyType({}))
    without_headers: Mapping[str, StringMatch] = field(default_factory=lambda: MappingProxyType({}))
    query_params: Mapping[str, StringMatch] = field(default_factory=lambda: MappingProxyType({}))
    port: int | None = None
    ignore_uri_case: bool = False
    # Istio: the match applies only to proxies whose workload has these labels / is in this namespace
    source_labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    source_namespace: str = ""
    stat_prefix: str = ""  # Envoy's Route.stat_prefix: per-route stats for this match
    gateways: tuple[str, ...] = ()  # Istio: the match applies only on these gateways (overrides the VS's list)


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    host: str  # as written (may be a short name)
    subset: str = ""
    port: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderOperations:
    set: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    add: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Headers:
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRouteDestination:
    destination: Destination
    weight: int | None = None  # None: not given (single destination means 100)
    headers: Headers | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRedirect:
    uri: str = ""
    authority: str = ""
    port: int | None = None
    derive_port: Literal["", "FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"] = ""
    scheme: str = ""
    redirect_code: int = 301


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPDirectResponse:
    status: int
    body: str | None = None  # body.string; body.bytes is decoded to text by validation


@dataclass(frozen=True, slots=True, kw_only=True)
class RegexRewrite:
    match: str
    rewrite: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRewrite:
    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRetry:
    attempts: int
    per_try_timeout: float | None = None
    retry_on: str | None = None  # as written: comma-separated Envoy retry policies and/or HTTP status codes
    retry_remote_localities: bool | None = None
    backoff: float | None = None  # seconds: Envoy's base interval between retries (None: Envoy's 25ms)
    retry_ignore_previous_hosts: bool | None = None  # None: Istio's default, which is to avoid them (true)


@dataclass(frozen=True, slots=True, kw_only=True)
class Delay:
    fixed_delay: float
    percentage: float | None = None  # 0..100; None means 100


# gRPC status names as Istio's abort.grpcStatus takes them; a name's position is its numeric code.
GRPC_STATUS_NAMES: tuple[str, ...] = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Abort:
    http_status: int | None = None
    grpc_status: str | None = None
    percentage: float | None = None  # 0..100; None means 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    delay: Delay | None = None
    abort: Abort | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Mirror:
    destination: Destination
    percentage: float | None = None  # 0..100; None means 100


@dataclass(frozen=True, slots=True, kw_only=True)
class CorsPolicy:
    """Istio's ``CorsPolicy``: which origins may call, with which methods and headers (``allow_origins`` holds the
    deprecated ``allowOrigin`` strings as exact matches too)."""

    allow_origins: tuple[StringMatch, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None  # whole seconds
    allow_credentials: bool | None = None
    unmatched_preflights: Literal["UNSPECIFIED", "FORWARD", "IGNORE"] = "UNSPECIFIED"


@dataclass(frozen=True, slots=True, kw_only=True)
class Delegate:
    """Istio's ``Delegate``: the VirtualService (one without hosts) whose routes replace this HTTP route; its
    namespace is the root's when not given (validation fills it in)."""

    name: str
    namespace: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRoute:
    name: str = ""
    match: tuple[HTTPMatchRequest, ...] = ()  # empty: matches every request
    route: tuple[HTTPRouteDestination, ...] = ()
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    rewrite: HTTPRewrite | None = None
    timeout: float | None = None
    retries: HTTPRetry | None = None
    fault: Fault | None = None
    mirrors: tuple[Mirror, ...] = ()  # `mirror` + `mirrorPercentage` and `mirrors` both land here
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None
    delegate: Delegate | None = None  # a root VirtualService's route handed to a delegate (no route of its own)


@dataclass(frozen=True, slots=True, kw_only=True)
class L4MatchAttributes:
    """A ``tcp`` route's match (Istio ``L4MatchAttributes``); every field set must match. ``destination_subnets``
    is matched by Envoy (a filter chain's prefix ranges); the rest picks the proxies a match applies to."""

    destination_subnets: tuple[str, ...] = ()  # IPs or CIDRs, as written
    port: int | None = None
    source_labels: Labels = field(default_factory=lambda: MappingProxyType({}))  # the client proxy's labels
    source_namespace: str = ""  # the client proxy's namespace
    gateways: tuple[str, ...] = ()  # the match applies only on these gateways ("mesh": sidecars)


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSMatchAttributes(L4MatchAttributes):
    """A ``tls`` route's match (Istio ``TLSMatchAttributes``): the SNI hosts (required; within the VirtualService's
    hosts, matched by Envoy as a filter chain's server names) and the L4 fields."""

    sni_hosts: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteDestination:
    """A weighted destination of a TCP or TLS route (Istio ``RouteDestination``)."""

    destination: Destination
    weight: int | None = None  # None: not given (a single destination gets everything)


@dataclass(frozen=True, slots=True, kw_only=True)
class TCPRoute:
    match: tuple[L4MatchAttributes, ...] = ()  # empty: every connection
    route: tuple[RouteDestination, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSRoute:
    match: tuple[TLSMatchAttributes, ...] = ()  # at least one (validation)
    route: tuple[RouteDestination, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualService:
    meta: ConfigMeta
    hosts: tuple[str, ...]  # as written (short names allowed); empty: a delegate (Istio 1.6+), see ``is_delegate``
    gateways: tuple[str, ...] = ()
    http: tuple[HTTPRoute, ...] = ()
    tls: tuple[TLSRoute, ...] = ()  # captured sidecars only (TLS/HTTPS ports' listeners)
    tcp: tuple[TCPRoute, ...] = ()  # captured sidecars only (non-HTTP, non-TLS ports' listeners)
    export_to: tuple[str, ...] = ()

    @property
    def is_delegate(self) -> bool:
        """A VirtualService without hosts: only the root VirtualServices that delegate to it use its routes."""
        return not self.hosts

    @property
    def is_root(self) -> bool:
        """A VirtualService with an HTTP route that delegates (``pilot.model.virtual_service_merge``)."""
        return any(route.delegate is not None for route in self.http)


# --------------------------------------------------------------------------------------------------------------
# PeerAuthentication (security.istio.io)
# --------------------------------------------------------------------------------------------------------------

MtlsMode = Literal["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]  # UNSET inherits from the enclosing scope


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerAuthentication:
    """Which inbound connections a workload's sidecar accepts: mutual TLS required, optional or off.

    Without a selector it applies to its whole namespace (to the whole mesh in the root namespace). Port-level
    modes need a selector; their keys are workload ports (the app's port, as in Istio), not service ports.
    """

    meta: ConfigMeta
    selector: Labels | None = None  # matchLabels; None (or empty in YAML): namespace-wide / mesh-wide
    mode: MtlsMode = "UNSET"
    port_level_mtls: Mapping[int, MtlsMode] = field(default_factory=lambda: MappingProxyType({}))


# --------------------------------------------------------------------------------------------------------------
# AuthorizationPolicy (security.istio.io)
# --------------------------------------------------------------------------------------------------------------

AuthorizationAction = Literal["ALLOW", "DENY", "AUDIT", "CUSTOM"]
MIXER_PROVIDER = "mixer"  # the one CUSTOM provider meshplane knows: Mixer's ext_authz server


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationSource:
    """``rules.from.source``: every field set must match (AND); within a field any value matches (OR); a ``not_*``
    field matches when none of its values does. Values are Istio's strings, ``*`` prefix/suffix forms kept."""

    principals: tuple[str, ...] = ()
    not_principals: tuple[str, ...] = ()
    request_principals: tuple[str, ...] = ()
    not_request_principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    not_namespaces: tuple[str, ...] = ()
    ip_blocks: tuple[str, ...] = ()  # addresses or CIDRs, matched against the connection's peer address
    not_ip_blocks: tuple[str, ...] = ()
    remote_ip_blocks: tuple[str, ...] = ()  # matched against the original client address (X-Forwarded-For)
    not_remote_ip_blocks: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()  # ``<sa>`` (the policy's namespace) or ``<namespace>/<sa>``, no wildcards
    not_service_accounts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationOperation:
    """``rules.to.operation``: same AND/OR/NOT structure as :class:`AuthorizationSource`."""

    hosts: tuple[str, ...] = ()
    not_hosts: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()  # workload (app) ports, as in Istio
    not_ports: tuple[int, ...] = ()
    methods: tuple[str, ...] = ()
    not_methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    not_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationCondition:
    """``rules.when``: ``key`` (e.g. ``request.headers[x-user]``, ``source.ip``) has one of ``values`` and none of
    ``not_values``."""

    key: str
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationRule:
    """A rule matches when any ``sources`` entry (or none given), any ``operations`` entry (or none given) and every
    ``when`` condition match."""

    sources: tuple[AuthorizationSource, ...] = ()  # rules.from[].source
    operations: tuple[AuthorizationOperation, ...] = ()  # rules.to[].operation
    when: tuple[AuthorizationCondition, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationPolicy:
    """Istio's AuthorizationPolicy. Without a selector it applies to its whole namespace (the whole mesh in the root
    namespace). ``rules`` empty: ALLOW matches nothing (so it denies every request), DENY/AUDIT never match, CUSTOM
    never calls the provider. CUSTOM names its ``provider`` (meshplane knows :data:`MIXER_PROVIDER`)."""

    meta: ConfigMeta
    selector: Labels | None = None  # matchLabels; None (or empty in YAML): namespace-wide / mesh-wide
    action: AuthorizationAction = "ALLOW"
    provider: str | None = None  # CUSTOM only
    rules: tuple[AuthorizationRule, ...] = ()


# --------------------------------------------------------------------------------------------------------------
# RequestAuthentication (security.istio.io)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class JwtHeader:
    """``jwtRules.fromHeaders``: a header carrying the token, after ``prefix`` (e.g. ``Bearer ``)."""

    name: str
    prefix: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimToHeader:
    """``jwtRules.outputClaimToHeaders``: copy ``claim`` (``a.b`` for nested claims) of a valid token to ``header``."""

    header: str
    claim: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JwtRule:
    """One issuer's tokens: where they are found, the keys that sign them (``jwks_uri``, fetched by Envoy, or the
    inline ``jwks``), and what a valid token passes on. Empty locations: Istio's defaults (``Authorization:
    Bearer`` and ``access_token``)."""

    issuer: str
    audiences: tuple[str, ...] = ()
    jwks_uri: str = ""
    jwks: str = ""
    from_headers: tuple[JwtHeader, ...] = ()
    from_params: tuple[str, ...] = ()
    from_cookies: tuple[str, ...] = ()
    output_payload_to_header: str = ""
    output_claim_to_headers: tuple[ClaimToHeader, ...] = ()
    forward_original_token: bool = False
    timeout: float | None = None  # seconds, for fetching ``jwks_uri``; None: Istio's 5 s
    space_delimited_claims: tuple[str, ...] = ()  # besides Istio's ``scope`` and ``permission``


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestAuthentication:
    """Istio's RequestAuthentication: a request with an invalid token (for any rule) is rejected (401); one without
    a token passes, and is left to AuthorizationPolicy (``requestPrincipals``, ``request.auth.*``). Selection as
    AuthorizationPolicy's."""

    meta: ConfigMeta
    selector: Labels | None = None
    jwt_rules: tuple[JwtRule, ...] = ()


# --------------------------------------------------------------------------------------------------------------
# Mixer policy kinds (mixer.meshplane.io/v1): checked by Mixer through Envoy's ext_authz
# --------------------------------------------------------------------------------------------------------------

AccessListEntryType = Literal["STRINGS", "CASE_INSENSITIVE_STRINGS", "IP_ADDRESSES", "REGEX"]
AccessListMode = Literal["deny", "allow"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessList:
    """Mixer's list checker: the CEL expression ``value`` is evaluated over a request's attributes and looked up in
    the entries; ``allow`` lets only listed values in, ``deny`` keeps listed values out. Entries come inline or from
    ``entries_file`` (an absolute path, one entry per line, ``#`` comments; Mixer re-reads it when it changes).
    Selection as AuthorizationPolicy's."""

    meta: ConfigMeta
    selector: Labels | None = None
    value: str  # CEL source, checked to compile at validation
    entries: tuple[str, ...] = ()
    entries_file: str | None = None
    entry_type: AccessListEntryType = "STRINGS"
    mode: AccessListMode
    fail_open: bool = False  # Mixer unreachable: let requests through (True) or deny them (False)


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitOverride:
    """A different limit for requests whose key evaluates to ``key``."""

    key: str
    requests: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """Mixer's in-memory quota: at most ``requests`` per ``per`` seconds for each value of the CEL ``key``, counted
    over the requests the optional CEL ``match`` accepts. Past the limit Mixer answers 429 with ``retry-after``."""

    meta: ConfigMeta
    selector: Labels | None = None
    match: str | None = None  # CEL source; None: every request
    key: str = "source.principal"  # CEL source
    requests: int
    per: float  # seconds
    overrides: tuple[RateLimitOverride, ...] = ()
    fail_open: bool = False


MixerPolicy = AccessList | RateLimit

# --------------------------------------------------------------------------------------------------------------
# Gateway (networking.istio.io): servers of gateway proxies (node type router)
# --------------------------------------------------------------------------------------------------------------

GatewayTlsMode = Literal["PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"]
TlsProtocolVersion = Literal["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayPort:
    number: int
    protocol: Protocol  # HTTP, HTTPS, HTTP2, GRPC, TCP or TLS
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerTLSSettings:
    """Istio's ServerTLSSettings: how a gateway server terminates (or passes through) TLS. File paths are read by
    the gateway's Envoy; ``credential_name`` is an SDS secret ``kubernetes://<name>`` from Citadel."""

    https_redirect: bool = False
    mode: GatewayTlsMode = "PASSTHROUGH"  # Istio's default (the enum's zero value)
    server_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    ca_crl: str = ""  # mutual modes: a file of revoked client certificates (Envoy's ``crl``)
    credential_name: str = ""
    subject_alt_names: tuple[str, ...] = ()  # accepted client SANs (MUTUAL)
    min_protocol_version: TlsProtocolVersion = "TLS_AUTO"
    max_protocol_version: TlsProtocolVersion = "TLS_AUTO"
    cipher_suites: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayServer:
    port: GatewayPort
    hosts: tuple[str, ...]  # as written: ``[namespace/]host``, namespace ``*``, ``.`` or a name
    bind: str = ""  # an IP address of the gateway's to listen on ("": every address)
    tls: ServerTLSSettings | None = None
    name: str = ""  # Istio: the stat prefix of a TLS-terminating HTTPS server's HTTP connection manager


@dataclass(frozen=True, slots=True, kw_only=True)
class Gateway:
    """Istio's Gateway: the servers (ports, hosts, TLS) of the gateway proxies its ``selector`` picks, in any
    namespace (Istio's default)."""

    meta: ConfigMeta
    selector: Labels = field(default_factory=lambda: MappingProxyType({}))  # empty: every gateway proxy
    servers: tuple[GatewayServer, ...] = ()


# --------------------------------------------------------------------------------------------------------------
# Sidecar (networking.istio.io)
# --------------------------------------------------------------------------------------------------------------

SidecarOutboundMode = Literal["ALLOW_ANY", "REGISTRY_ONLY"]  # Istio OutboundTrafficPolicy.Mode


@dataclass(frozen=True, slots=True, kw_only=True)
class SidecarPort:
    """A Sidecar listener's ``port``: its number, protocol and (optional) name."""

    number: int
    protocol: Protocol
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SidecarHost:
    """One ``egress.hosts`` entry ``<namespace>/<dnsName>``: ``namespace`` is ``*`` (any), ``.`` (the Sidecar's
    own namespace; for the root namespace's mesh default, the proxy's), ``~`` (none) or a namespace name;
    ``host`` is ``*``, a ``*.suffix`` wildcard or a host name (FQDN, or short: resolved in ``namespace``)."""

    namespace: str
    host: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SidecarEgressListener:
    """An ``egress`` entry: the hosts a proxy sees, on ``port`` only (when set) or on every port (the catch-all
    listener, at most one, last)."""

    port: SidecarPort | None = None
    hosts: tuple[SidecarHost, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SidecarIngressListener:
    """An ``ingress`` entry: the workload accepts ``port`` and forwards it to ``default_endpoint`` (address, port)
    in its pod: ``127.0.0.1`` (loopback) or ``0.0.0.0`` (the pod's IP, Istio's meaning of it), or to the unix
    socket ``default_socket`` (a path, or ``@name`` in Linux's abstract namespace); neither: the connection's
    original destination (the pod's IP and ``port``). ``connection_pool``: the inbound cluster's, over the
    DestinationRule's and the Sidecar's ``inboundConnectionPool``."""

    port: SidecarPort
    default_endpoint: tuple[str, int] | None = None
    default_socket: str = ""
    connection_pool: ConnectionPool | None = None
    # TLS the sidecar terminates on the port (SIMPLE or MUTUAL, certificate files), when its mTLS mode is DISABLE
    tls: ServerTLSSettings | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Sidecar:
    """What the sidecars of a namespace (or, with ``workload_selector``, of some workloads) are given: the outbound
    hosts they see (``egress``), the inbound ports they accept (``ingress``) and where traffic to a host outside
    the registry goes (``outbound_traffic_policy``, else MeshConfig's). Selection and precedence: ``pilot.model``."""

    meta: ConfigMeta
    workload_selector: Labels | None = None  # None: the namespace's default (root namespace: the mesh's)
    egress: tuple[SidecarEgressListener, ...] = ()  # empty: every host, as without a Sidecar
    ingress: tuple[SidecarIngressListener, ...] = ()  # empty: the ports of the workload's services
    # every inbound cluster's connection pool (Istio 1.22+), over the DestinationRule's; an ingress port's own wins
    inbound_connection_pool: ConnectionPool | None = None
    outbound_traffic_policy: SidecarOutboundMode | None = None
    # ALLOW_ANY's destination for traffic to hosts outside the registry, instead of the original destination
    egress_proxy: Destination | None = None


# --------------------------------------------------------------------------------------------------------------
# Telemetry (telemetry.istio.io): access logs, metrics and tracing per workload (pilot.model.telemetry)
# --------------------------------------------------------------------------------------------------------------


class WorkloadMode(StrEnum):
    """``match.mode``: which side of a request a rule is for (CLIENT: outbound / gateways, SERVER: inbound)."""

    CLIENT_AND_SERVER = "CLIENT_AND_SERVER"
    CLIENT = "CLIENT"
    SERVER = "SERVER"


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusCodeFilter:
    """``accessLogging.filter.expression`` of the form ``response.code <op> <code>`` (the subset meshplane
    translates exactly, to Envoy's status-code filter); ``op`` one of ``>=``, ``>``, ``<=``, ``<``, ``==``."""

    expression: str
    op: str
    code: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetryAccessLogging:
    mode: WorkloadMode = WorkloadMode.CLIENT_AND_SERVER
    providers: tuple[str, ...] = ()  # empty: the parent scope's (or MeshConfig defaultProviders.accessLogging)
    disabled: bool | None = None
    filter: StatusCodeFilter | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricTagOverride:
    """``tagOverrides.<tag>``: REMOVE the label, or UPSERT it with the value of ``value`` (an expression of the
    subset ``mixer.metric_overrides`` evaluates)."""

    tag: str
    operation: Literal["UPSERT", "REMOVE"] = "UPSERT"
    value: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsOverride:
    metric: str = "ALL_METRICS"  # Istio's MetricSelector.IstioMetric name, or the standard name a customMetric gave
    mode: WorkloadMode = WorkloadMode.CLIENT_AND_SERVER
    disabled: bool | None = None
    tag_overrides: tuple[MetricTagOverride, ...] = ()  # sorted by tag


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetryMetrics:
    providers: tuple[str, ...] = ()
    overrides: tuple[MetricsOverride, ...] = ()  # in order: later ones win


@dataclass(frozen=True, slots=True, kw_only=True)
class TracingCustomTag:
    """``customTags.<tag>``: a ``literal`` value, an ``environment`` variable of the proxy, or a request ``header``
    (``name``: the variable or header; ``default_value`` when it is absent)."""

    tag: str
    kind: Literal["literal", "environment", "header"]
    value: str = ""  # the literal's value
    name: str = ""
    default_value: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetryTracing:
    mode: WorkloadMode = WorkloadMode.CLIENT_AND_SERVER
    providers: tuple[str, ...] = ()
    random_sampling_percentage: float | None = None
    disable_span_reporting: bool | None = None
    custom_tags: tuple[TracingCustomTag, ...] = ()  # sorted by tag
    use_request_id_for_trace_sampling: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Telemetry:
    """Istio's Telemetry: mesh-wide (root namespace, no selector), namespace-wide (no selector) or for the
    workloads ``selector`` picks in its namespace; Istio's precedence and merging in ``pilot.model.telemetry``."""

    meta: ConfigMeta
    selector: Labels | None = None
    access_logging: tuple[TelemetryAccessLogging, ...] = ()
    metrics: tuple[TelemetryMetrics, ...] = ()
    tracing: tuple[TelemetryTracing, ...] = ()


class EnvoyFilterApplyTo(StrEnum):
    """Where in the generated Envoy config a patch applies (Istio's ``EnvoyFilter.ApplyTo``, those meshplane does)."""

    LISTENER = "LISTENER"
    FILTER_CHAIN = "FILTER_CHAIN"
    NETWORK_FILTER = "NETWORK_FILTER"
    HTTP_FILTER = "HTTP_FILTER"
    ROUTE_CONFIGURATION = "ROUTE_CONFIGURATION"
    VIRTUAL_HOST = "VIRTUAL_HOST"
    HTTP_ROUTE = "HTTP_ROUTE"
    CLUSTER = "CLUSTER"


class EnvoyFilterContext(StrEnum):
    """Istio's ``EnvoyFilter.PatchContext``: the generation context a patch matches."""

    ANY = "ANY"
    SIDECAR_INBOUND = "SIDECAR_INBOUND"
    SIDECAR_OUTBOUND = "SIDECAR_OUTBOUND"
    GATEWAY = "GATEWAY"


class EnvoyFilterOperation(StrEnum):
    """Istio's ``EnvoyFilter.Patch.Operation``."""

    MERGE = "MERGE"
    ADD = "ADD"
    REMOVE = "REMOVE"
    INSERT_BEFORE = "INSERT_BEFORE"
    INSERT_AFTER = "INSERT_AFTER"
    INSERT_FIRST = "INSERT_FIRST"
    REPLACE = "REPLACE"


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyFilterProxyMatch:
    """``match.proxy``: a regex (RE2 syntax, matched with Python's ``re.match``) on the node's ``ISTIO_VERSION``
    metadata, and exact node metadata values."""

    proxy_version: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()  # sorted (hashable: patches key shared config, see pilot.model)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyFilterFilterChainMatch:
    """``match.listener.filterChain``: every field set must match the chain (``filter_name`` a network filter in it,
    ``sub_filter_name`` an HTTP filter of that HTTP connection manager)."""

    name: str | None = None
    sni: str | None = None
    transport_protocol: str | None = None
    application_protocols: tuple[str, ...] = ()
    destination_port: int | None = None
    filter_name: str | None = None
    sub_filter_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyFilterListenerMatch:
    port_number: int | None = None
    name: str | None = None
    filter_chain: EnvoyFilterFilterChainMatch | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyFilterRouteMatch:
    """``match.routeConfiguration`` with its ``vhost`` and ``vhost.route`` flattened."""

    port_number: int | None = None
    port_name: str | None = None
    gateway: str | None = None
    name: str | None = None
    vhost_name: str | None = None
    vhost_domain_name: str | None = None
    route_name: str | None = None
    route_action: str | None = None  # ANY (None), ROUTE, REDIRECT, DIRECT_RESPONSE


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyFilterClusterMatch:
    port_number: int | None = None
    service: str | None = None
    subset: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyFilterPatch:
    """One ``configPatches[]`` entry. ``value`` is the patch value parsed into the Envoy message ``apply_to`` names
    (``pilot.config.envoy_filter_values``) and serialized (deterministically): empty for REMOVE."""

    index: int  # its position in configPatches (for messages)
    apply_to: EnvoyFilterApplyTo
    operation: EnvoyFilterOperation
    value: bytes = b""
    context: EnvoyFilterContext = EnvoyFilterContext.ANY
    proxy: EnvoyFilterProxyMatch | None = None
    listener: EnvoyFilterListenerMatch | None = None
    route_configuration: EnvoyFilterRouteMatch | None = None
    cluster: EnvoyFilterClusterMatch | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyFilter:
    """Istio's EnvoyFilter: patches applied to the generated config of the proxies it selects (``pilot.model``,
    ``pilot.generate.envoy_filter_patch``)."""

    meta: ConfigMeta
    workload_selector: Labels | None = None  # None: the namespace's proxies (root namespace: every proxy)
    priority: int = 0
    config_patches: tuple[EnvoyFilterPatch, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyConfig:
    """Istio's ProxyConfig (``networking.istio.io/v1beta1``): how the proxies of a namespace (or, with ``selector``,
    of some workloads; in the root namespace without one, of the mesh) are started. Read by the proxy's launcher when
    it starts Envoy (``--concurrency``, the process's environment); which one applies: ``pilot.model.proxy_config``."""

    meta: ConfigMeta
    selector: Labels | None = None  # None: the namespace's (root namespace: the mesh's)
    concurrency: int | None = None  # worker threads; 0: as many as the machine has cores; None: not set here
    environment_variables: Labels = field(
        default_factory=lambda: MappingProxyType({})
    )  # added to the Envoy process's environment


Resource = (
    ServiceEntry
    | WorkloadEntry
    | WorkloadGroup
    | DestinationRule
    | VirtualService
    | PeerAuthentication
    | AuthorizationPolicy
    | RequestAuthentication
    | AccessList
    | RateLimit
    | Gateway
    | Sidecar
    | Telemetry
    | EnvoyFilter
    | ProxyConfig
)
