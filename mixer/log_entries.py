"""One Envoy HTTP access-log entry -> one request with Istio's standard metric labels (a ``RequestRecord``).

Every sidecar whose bootstrap names Mixer streams its HTTP access logs to Mixer (``envoy.access_loggers.http_grpc``
on the outbound HCM with custom tag ``reporter: source``, on the inbound HCM with ``reporter: destination`` and
``destination_service: <fqdn>``). Like Istio's Mixer (and since Istio 1.5 the in-proxy stats filter), each
report becomes one request described by the labels of Istio's standard metrics
(https://istio.io/latest/docs/reference/config/metrics/):

- ``reporter="destination"`` (inbound): the destination workload is the reporting sidecar's (its node id
  ``sidecar~<ip>~<workload>.<namespace>~...``), the source workload is whoever is at the downstream peer
  address (the caller's pod IP: a pod's sidecar connects from it), ``destination_service`` is the listener's or
  filter chain's tag (else the service port at the downstream local address: the pod's original destination). The
  principals come from the TLS handshake: the peer certificate's URI SAN (``source_principal``), our own
  (``destination_principal``), without ``spiffe://``; ``connection_security_policy`` is ``mutual_tls`` when the
  peer presented a SPIFFE certificate, else ``none``.
- ``reporter="source"`` (outbound): the source workload is the reporting sidecar's, the destination workload is
  whoever is at the upstream host address (the called pod's IP), ``destination_service`` the FQDN of the
  ``outbound|<port>|<subset>|<fqdn>`` cluster (else the request's authority without port; ``unknown`` without
  either). An access-log entry carries no upstream TLS properties, so ``source_principal``,
  ``destination_principal`` and ``connection_security_policy`` are ``unknown``: the same value Istio reports on
  the client side for the connection policy; Istio does fill the principals there, from the peer metadata
  exchanged over mTLS, which an access log does not carry.

Istio's conventions: ``unknown`` for anything not known; ``source_app``/``version`` from the workload's ``app`` and
``version`` labels; canonical service and revision from ``service.istio.io/canonical-name`` /
``app.kubernetes.io/name`` / ``app`` (else the workload name) and ``service.istio.io/canonical-revision`` /
``app.kubernetes.io/version`` / ``version`` (else ``latest``); ``request_protocol`` ``grpc`` for a
``content-type: application/grpc*`` request (the logged request header), else ``http``; ``response_code`` ``0``
when no response was sent; ``response_flags`` Envoy's ``%RESPONSE_FLAGS%`` short names, comma-separated in
Envoy's order, ``-`` when none; ``grpc_response_status`` the logged ``grpc-status`` trailer or header, empty for
requests that are not gRPC. ``source_cluster``/``destination_cluster`` are not produced: they name the cluster of
a multicluster mesh, and a meshplane mesh is one cluster.

The size distributions count headers plus body (Mixer's ``request.total_size`` / ``response.total_size``, which
Istio's stats filter keeps), and the duration is the time to the last byte sent downstream, in milliseconds
(Envoy's ``%DURATION%``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from envoy.config.core.v3.address_pb2 import Address
from envoy.config.core.v3.base_pb2 import RequestMethod
from envoy.data.accesslog.v3.accesslog_pb2 import HTTPAccessLogEntry, ResponseFlags, TLSProperties

from meshplane.mixer_names import REPORTER_DESTINATION, REPORTER_SOURCE, TAG_DESTINATION_SERVICE, TAG_REPORTER
from meshplane.names import parse_outbound_cluster_name  # the names module only: no generators
from mixer.attributes import socket_address
from mixer.registry import UNKNOWN, UNKNOWN_PEER, WorkloadInfo, WorkloadRegistry, principal_of
from pilot.config.types import EMPTY_LABELS, Labels
from pilot.model.types import ProxyNode

__all__ = [
    "LABEL_NAMES",
    "UNKNOWN",
    "LogEntryError",
    "RequestRecord",
    "reporting_workload",
    "request_record",
    "response_flags",
]

_NO_FLAGS = "-"
_GRPC_CONTENT_TYPE = "application/grpc"

# Envoy's ResponseFlagUtils short strings, in the order Envoy writes them (the order of the proto's fields).
_FLAG_NAMES: tuple[tuple[str, str], ...] = (
    ("failed_local_healthcheck", "LH"),
    ("no_healthy_upstream", "UH"),
    ("upstream_request_timeout", "UT"),
    ("local_reset", "LR"),
    ("upstream_remote_reset", "UR"),
    ("upstream_connection_failure", "UF"),
    ("upstream_connection_termination", "UC"),
    ("upstream_overflow", "UO"),
    ("no_route_found", "NR"),
    ("delay_injected", "DI"),
    ("fault_injected", "FI"),
    ("rate_limited", "RL"),
    ("unauthorized_details", "UAEX"),  # a message (reason EXTERNAL_SERVICE): set when ext_authz denied
    ("rate_limit_service_error", "RLSE"),
    ("downstream_connection_termination", "DC"),
    ("upstream_retry_limit_exceeded", "URX"),
    ("stream_idle_timeout", "SI"),
    ("invalid_envoy_request_headers", "IH"),
    ("downstream_protocol_error", "DPE"),
    ("upstream_max_stream_duration_reached", "UMSDR"),
    ("response_from_cache_filter", "RFCF"),
    ("no_filter_config_found", "NFCF"),
    ("duration_timeout", "DT"),
    ("upstream_protocol_error", "UPE"),
    ("no_cluster_found", "NC"),
    ("overload_manager", "OM"),
    ("dns_resolution_failure", "DF"),
    ("downstream_remote_reset", "DR"),
)


_HTTP_PROTOCOLS = {
    HTTPAccessLogEntry.HTTP10: "HTTP/1.0",
    HTTPAccessLogEntry.HTTP11: "HTTP/1.1",
    HTTPAccessLogEntry.HTTP2: "HTTP/2",
    HTTPAccessLogEntry.HTTP3: "HTTP/3",
}


class LogEntryError(ValueError):
    """An access-log entry Mixer cannot describe (e.g. without the ``reporter`` tag Pilot sets)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    """One request as one sidecar reported it: Istio's labels (the fields up to ``connection_security_policy``,
    in ``LABEL_NAMES`` order) and the measurements."""

    reporter: str
    source_workload: str
    source_workload_namespace: str
    source_principal: str
    source_app: str
    source_version: str
    source_canonical_service: str
    source_canonical_revision: str
    destination_workload: str
    destination_workload_namespace: str
    destination_principal: str
    destination_app: str
    destination_version: str
    destination_canonical_service: str
    destination_canonical_revision: str
    destination_service: str
    destination_service_name: str
    destination_service_namespace: str
    request_protocol: str
    response_code: str
    grpc_response_status: str
    response_flags: str
    connection_security_policy: str
    # measurements
    duration_ms: float
    request_bytes: int
    response_bytes: int
    start_time: float  # seconds since the epoch
    mtls: bool
    # what Telemetry tag overrides may read (mixer.metric_overrides): request attributes ("" when not logged) and
    # the peers' workload labels; not compared (the labels and measurements above are what a record is)
    request_method: str = field(default="", compare=False)
    request_host: str = field(default="", compare=False)
    request_path: str = field(default="", compare=False)
    request_url_path: str = field(default="", compare=False)
    request_scheme: str = field(default="", compare=False)
    request_useragent: str = field(default="", compare=False)
    request_id: str = field(default="", compare=False)
    request_http_protocol: str = field(default="", compare=False)  # HTTP/1.0, HTTP/1.1, HTTP/2, HTTP/3
    destination_port: str = field(default="", compare=False)
    source_labels: Labels = field(default_factory=lambda: EMPTY_LABELS, hash=False, compare=False)
    destination_labels: Labels = field(default_factory=lambda: EMPTY_LABELS, hash=False, compare=False)

    @property
    def label_values(self) -> tuple[str, ...]:
        """The label values in ``LABEL_NAMES`` order (a hashable key for one metric series)."""
        return (
            self.reporter,
            self.source_workload,
            self.source_workload_namespace,
            self.source_principal,
            self.source_app,
            self.source_version,
            self.source_canonical_service,
            self.source_canonical_revision,
            self.destination_workload,
            self.destination_workload_namespace,
            self.destination_principal,
            self.destination_app,
            self.destination_version,
            self.destination_canonical_service,
            self.destination_canonical_revision,
            self.destination_service,
            self.destination_service_name,
            self.destination_service_namespace,
            self.request_protocol,
            self.response_code,
            self.grpc_response_status,
            self.response_flags,
            self.connection_security_policy,
        )

    @property
    def is_error(self) -> bool:
        """A server error (5xx) or no response at all (``0``)."""
        return self.response_code == "0" or self.response_code.startswith("5")


_FIELD_NAMES = [f.name for f in fields(RequestRecord)]
LABEL_NAMES: tuple[str, ...] = tuple(_FIELD_NAMES[: _FIELD_NAMES.index("connection_security_policy") + 1])


def reporting_workload(node: ProxyNode | None, registry: WorkloadRegistry) -> WorkloadInfo | None:
    """The workload of the sidecar that sent a stream, found as Pilot finds a proxy's (``resolve_proxy``): by its
    node id's name, else by address in its namespace; a sidecar the registry does not know is still described by
    its node id's name and namespace."""
    if node is None:
        return None
    info = registry.workload_named(node.namespace, node.workload_name)
    if info is None and (by_address := registry.workload_at(node.ip)) is not None:
        info = by_address if by_address.namespace == node.namespace else None
    if info is None:
        return WorkloadInfo(name=node.workload_name, namespace=node.namespace, address=node.ip)
    return info


_FLAG_ORDER = {field: (index, short) for index, (field, short) in enumerate(_FLAG_NAMES)}


def response_flags(flags: ResponseFlags) -> str:
    """Envoy's ``%RESPONSE_FLAGS%``: the short names of the set flags, comma-separated; ``-`` for none.

    Only the fields that are set are visited (``ListFields``: a true flag, a present ``unauthorized_details``):
    most entries have none, and this runs for every entry."""
    present = flags.ListFields()
    if not present:
        return _NO_FLAGS
    ordered = sorted(_FLAG_ORDER[descriptor.name] for descriptor, _ in present if descriptor.name in _FLAG_ORDER)
    return ",".join(short for _, short in ordered) if ordered else _NO_FLAGS


def request_record(
    entry: HTTPAccessLogEntry, reporter: WorkloadInfo | None, registry: WorkloadRegistry
) -> RequestRecord:
    """The request ``entry`` describes, reported by the sidecar of workload ``reporter`` (see
    ``reporting_workload``), with peers resolved in ``registry``. LogEntryError without a ``reporter`` tag."""
    common = entry.common_properties
    tags = common.custom_tags
    side = tags.get(TAG_REPORTER, "")
    request = entry.request
    if side == REPORTER_DESTINATION:
        source = registry.workload_at(socket_address(common.downstream_remote_address)[0])
        destination = reporter
        service = tags.get(TAG_DESTINATION_SERVICE, "") or _service_at(common.downstream_local_address, registry)
        tls = common.tls_properties
        source_principal = _uri_san(tls.peer_certificate_properties)
        destination_principal = _uri_san(tls.local_certificate_properties)
        policy = "mutual_tls" if source_principal else "none"
        source_principal = source_principal or UNKNOWN
        destination_principal = destination_principal or UNKNOWN
    elif side == REPORTER_SOURCE:
        source = reporter
        destination = registry.workload_at(socket_address(common.upstream_remote_address)[0])
        service = _cluster_service(common.upstream_cluster) or _authority_host(request.authority)
        source_principal = destination_principal = policy = UNKNOWN
    else:
        raise LogEntryError(f"access-log entry without custom tag {TAG_REPORTER!r} = source|destination: {side!r}")
    service = service or UNKNOWN
    service_name, service_namespace = _service_name_namespace(service, registry)
    src = source.peer if source is not None else UNKNOWN_PEER
    dst = destination.peer if destination is not None else UNKNOWN_PEER
    grpc = request.request_headers.get("content-type", "").startswith(_GRPC_CONTENT_TYPE)
    response = entry.response
    response_code = str(response.response_code.value) if response.HasField("response_code") else "0"
    if grpc:
        grpc_status = (
            response.response_trailers.get("grpc-status") or response.response_headers.get("grpc-status") or UNKNOWN
        )
    else:
        grpc_status = ""
    if common.HasField("time_to_last_downstream_tx_byte"):
        duration = common.time_to_last_downstream_tx_byte
    else:
        duration = common.duration
    return RequestRecord(
        reporter=side,
        source_workload=src.workload,
        source_workload_namespace=src.namespace,
        source_principal=source_principal,
        source_app=src.app,
        source_version=src.version,
        source_canonical_service=src.canonical_service,
        source_canonical_revision=src.canonical_revision,
        destination_workload=dst.workload,
        destination_workload_namespace=dst.namespace,
        destination_principal=destination_principal,
        destination_app=dst.app,
        destination_version=dst.version,
        destination_canonical_service=dst.canonical_service,
        destination_canonical_revision=dst.canonical_revision,
        destination_service=service,
        destination_service_name=service_name,
        destination_service_namespace=service_namespace,
        request_protocol="grpc" if grpc else "http",
        response_code=response_code,
        grpc_response_status=grpc_status,
        response_flags=response_flags(common.response_flags),
        connection_security_policy=policy,
        duration_ms=duration.seconds * 1000.0 + duration.nanos / 1_000_000.0,
        request_bytes=request.request_headers_bytes + request.request_body_bytes,
        response_bytes=response.response_headers_bytes + response.response_body_bytes,
        start_time=common.start_time.seconds + common.start_time.nanos / 1_000_000_000.0,
        mtls=policy == "mutual_tls",
        request_method=RequestMethod.Name(request.request_method) if request.request_method else "",
        request_host=request.authority,
        request_path=request.path,
        request_url_path=request.path.partition("?")[0],
        request_scheme=request.scheme,
        request_useragent=request.user_agent,
        request_id=request.request_id,
        request_http_protocol=_HTTP_PROTOCOLS.get(entry.protocol_version, ""),
        destination_port=str(common.downstream_local_address.socket_address.port_value or ""),
        source_labels=source.labels if source is not None else EMPTY_LABELS,
        destination_labels=destination.labels if destination is not None else EMPTY_LABELS,
    )


def _uri_san(certificate: TLSProperties.CertificateProperties) -> str:
    """The first URI SAN of a certificate, in Istio's principal form (no ``spiffe://``); empty without one."""
    for san in certificate.subject_alt_name:
        if san.uri:
            return principal_of(san.uri)
    return ""


def _service_at(address: Address, registry: WorkloadRegistry) -> str:
    instance = registry.instance_at(*socket_address(address))
    return instance.service.host if instance is not None else ""


def _cluster_service(cluster: str) -> str:
    """The FQDN of an ``outbound|<port>|<subset>|<fqdn>`` cluster (Pilot's own naming); empty for any other."""
    try:
        return parse_outbound_cluster_name(cluster)[2]
    except ValueError:
        return ""


def _authority_host(authority: str) -> str:
    """The host of a ``:authority`` (``host``, ``host:port``, ``[v6]:port``)."""
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    return authority.rpartition(":")[0] if authority.count(":") == 1 else authority


def _service_name_namespace(service: str, registry: WorkloadRegistry) -> tuple[str, str]:
    """Istio's ``destination_service_name`` (the host's first label) and ``_namespace`` (the namespace of the
    ServiceEntry defining it, else the second label of a ``<name>.<namespace>.svc.<domain>`` host)."""
    if service == UNKNOWN:
        return UNKNOWN, UNKNOWN
    labels = service.split(".")
    known = registry.service(service)
    if known is not None:
        return labels[0], known.namespace
    if len(labels) >= 3 and labels[2] == "svc":
        return labels[0], labels[1]
    return labels[0], UNKNOWN
