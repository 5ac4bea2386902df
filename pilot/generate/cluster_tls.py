"""How an outbound cluster talks TLS: auto mTLS, DestinationRule ``tls`` (Istio ``cluster_tls.go``).

Which settings apply (:func:`resolve_client_tls`, Istio's ``MergeTrafficPolicy``): a subset's ``tls`` over the
rule's, a port-level entry's over its policy's top level; a port-level entry without ``tls`` means none (Istio:
port-level settings are not inherited).

Then (:func:`apply_upstream_tls`, Istio ``buildUpstreamTLSSettings`` + ``applyUpstreamTLSSettings``):

- no ``tls``: auto mTLS for proxies with SDS, unless the service is MESH_EXTERNAL. The cluster gets
  ``transport_socket_matches``: endpoints whose EDS metadata says ``tlsMode: istio`` (see
  :func:`mark_istio_endpoints`) get Istio mutual TLS, every other endpoint plaintext;
- ISTIO_MUTUAL: always Istio mutual TLS (no matches): the SDS certificate ``default``, the ``ROOTCA`` trust
  bundle, and the server's SPIFFE ID checked against the service accounts of the cluster's endpoints and the
  ServiceEntry's ``subjectAltNames`` (or only the rule's ``subjectAltNames``), SNI
  ``outbound_.<port>_.<subset>_.<host>``, ALPN ``istio`` (+ ``h2``);
- DISABLE: plaintext;
- SIMPLE / MUTUAL: TLS origination with files the client's Envoy reads: ``caCertificates`` (else the system's
  trust store, as Istio's default ``VERIFY_CERTIFICATE_AT_CLIENT``), ``subjectAltNames`` (else the ServiceEntry's),
  ``sni`` (else the service host; Istio sets auto_sni, which is the Host header: the same name here, since the
  outbound proxy routes by Host), ``insecureSkipVerify``; MUTUAL adds ``clientCertificate``/``privateKey``;
- SIMPLE / MUTUAL with ``credentialName``: the same, with the certificates over SDS from Citadel
  (``cluster_credential_tls.py``).

A proxy without SDS cannot use Citadel's secrets (its bootstrap has no ``sds-grpc`` cluster and Envoy would reject
the update): it gets no auto mTLS, and an ISTIO_MUTUAL rule is not applied for it (plaintext, with a warning); a
cluster whose ``tls`` names a ``credentialName`` has no endpoints for it (:func:`required_credential`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import structlog
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import DataSource, Metadata
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import (
    CertificateValidationContext,
    SubjectAltNameMatcher,
    TlsCertificate,
)
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import CommonTlsContext, UpstreamTlsContext
from google.protobuf.struct_pb2 import Struct

from meshplane.identity import SDS_ROOT_CA, SDS_WORKLOAD_CERT, spiffe_id
from pilot.config.types import ClientTLSSettings, DestinationRule, ServiceEntry, ServicePort, Subset, TrafficPolicy
from pilot.generate._tls import (
    exact_uri_sans,
    raw_buffer_transport_socket,
    sds_secret_config,
    sidecar_tls_params,
    tls_transport_socket,
    typed_sans,
)
from pilot.generate.cluster_credential_tls import credential_tls_context
from pilot.model import istio_tls_endpoint
from pilot.model.types import Endpoint, MeshSnapshot, Service

__all__ = [
    "ALPN_IN_MESH",
    "ALPN_IN_MESH_H2",
    "SYSTEM_CA_BUNDLE",
    "TRANSPORT_SOCKET_MATCH_KEY",
    "apply_upstream_tls",
    "destination_identities",
    "istio_mutual_tls_context",
    "mark_istio_endpoints",
    "mesh_server_sans",
    "outbound_sni",
    "required_credential",
    "resolve_client_tls",
    "simple_tls_context",
]

log = structlog.get_logger(__name__)

TRANSPORT_SOCKET_MATCH_KEY = "envoy.transport_socket_match"  # the endpoint metadata Envoy matches sockets on
ALPN_IN_MESH = ("istio",)  # Istio's ALPNInMesh: tells the server's sidecar "a mesh peer"
ALPN_IN_MESH_H2 = ("istio", "h2")  # Istio's ALPNInMeshH2, for HTTP/2 clusters

_warned: set[str] = set()  # clusters already warned about (once per process, not per snapshot)


def outbound_sni(port: int, subset: str, host: str) -> str:
    """Istio ``BuildDNSSrvSubsetKey``: ``outbound_.9080_.v1_.reviews.default.svc.cluster.local``."""
    return f"outbound_.{port}_.{subset}_.{host}"


def _policy_tls(policy: TrafficPolicy | None, port: int) -> tuple[ClientTLSSettings | None, bool]:
    """The policy's tls for ``port`` and whether a port-level entry decided it."""
    if policy is None:
        return None, False
    for setting in policy.port_level_settings:
        if setting.port == port:
            return setting.tls, True
    return policy.tls, False


def resolve_client_tls(rule: DestinationRule | None, subset: Subset | None, port: int) -> ClientTLSSettings | None:
    """The ``tls`` that applies to one cluster: subset (its port level first) > port level > top level."""
    tls, _ = _policy_tls(rule.traffic_policy if rule is not None else None, port)
    if subset is not None and subset.traffic_policy is not None:
        subset_tls, port_level = _policy_tls(subset.traffic_policy, port)
        if subset_tls is not None or port_level:
            return subset_tls
    return tls


def required_credential(rule: DestinationRule | None, subset: Subset | None, port: int) -> str:
    """The ``credentialName`` the cluster's TLS origination takes its certificates from ("" when none): only a
    proxy with SDS can fetch it."""
    tls = resolve_client_tls(rule, subset, port)
    if tls is None or tls.mode not in ("SIMPLE", "MUTUAL"):
        return ""
    return tls.credential_name


def destination_identities(service: Service, endpoints: Iterable[Endpoint], trust_domain: str) -> tuple[str, ...]:
    """The SPIFFE IDs a client accepts from the servers of these endpoints: their workloads' service accounts
    (``default`` when a WorkloadEntry names none), and inline endpoints' service accounts in the service's
    namespace. Sorted, without duplicates."""
    identities: set[str] = set()
    for endpoint in endpoints:
        if endpoint.workload is not None:
            identities.add(spiffe_id(trust_domain, endpoint.workload.namespace, endpoint.service_account))
        elif endpoint.service_account:
            identities.add(spiffe_id(trust_domain, service.namespace, endpoint.service_account))
    return tuple(sorted(identities))


def mesh_server_sans(identities: Sequence[str], entry_sans: Sequence[str]) -> list[SubjectAltNameMatcher]:
    """What a client accepts from a mesh server (auto mTLS, ISTIO_MUTUAL without the rule's own SANs): the
    endpoints' SPIFFE IDs and the ServiceEntry's ``subjectAltNames``, as Istio adds a ServiceEntry's SANs to the
    service accounts of its service (``ServiceAccounts`` in ``serviceentry/conversion.go``)."""
    extra = [name for name in dict.fromkeys(entry_sans) if name not in identities]
    return [*exact_uri_sans(identities), *typed_sans(extra)]


def istio_mutual_tls_context(*, sni: str, sans: Sequence[SubjectAltNameMatcher], http2: bool) -> UpstreamTlsContext:
    """Istio ``buildIstioMutualTLS`` over SDS: the workload certificate ``default``, the ``ROOTCA`` bundle."""
    common = CommonTlsContext(
        tls_params=sidecar_tls_params(),
        tls_certificate_sds_secret_configs=[sds_secret_config(SDS_WORKLOAD_CERT)],
        alpn_protocols=list(ALPN_IN_MESH_H2 if http2 else ALPN_IN_MESH),
    )
    combined = common.combined_validation_context
    combined.default_validation_context.CopyFrom(CertificateValidationContext(match_typed_subject_alt_names=sans))
    combined.validation_context_sds_secret_config.CopyFrom(sds_secret_config(SDS_ROOT_CA))
    return UpstreamTlsContext(common_tls_context=common, sni=sni)


SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian/Ubuntu/Alpine, and Envoy's own images


def simple_tls_context(
    tls: ClientTLSSettings, *, sni: str, default_sans: Sequence[str], http2: bool
) -> UpstreamTlsContext:
    """Istio ``constructUpstreamTLS`` for SIMPLE and MUTUAL, with the files read by Envoy itself."""
    common = CommonTlsContext(tls_params=sidecar_tls_params())
    if http2:
        common.alpn_protocols.append("h2")
    if tls.mode == "MUTUAL":
        common.tls_certificates.append(
            TlsCertificate(
                certificate_chain=DataSource(filename=tls.client_certificate),
                private_key=DataSource(filename=tls.private_key),
            )
        )
    if not tls.insecure_skip_verify:
        validation = common.validation_context
        # Without caCertificates: the sidecar's system bundle, as a file (Istio's sidecar image does the same).
        # Envoy refuses SAN checks without a trusted CA, and `system_root_certs` does not count as one.
        validation.trusted_ca.filename = tls.ca_certificates or SYSTEM_CA_BUNDLE
        if tls.ca_crl:
            validation.crl.filename = tls.ca_crl
        # Without subjectAltNames (or the ServiceEntry's), the server must still be the host asked for: Istio's
        # auto_san_validation checks the certificate against the SNI; otherwise any publicly trusted
        # certificate would do.
        sans = tls.subject_alt_names or default_sans or (tls.sni or sni,)
        validation.match_typed_subject_alt_names.extend(typed_sans(sans))
    return UpstreamTlsContext(common_tls_context=common, sni=tls.sni or sni)


def _auto_mtls_matches(context: UpstreamTlsContext) -> list[Cluster.TransportSocketMatch]:
    """Istio's ``tlsMode-istio`` / ``tlsMode-disabled`` pair: mTLS to sidecars, plaintext to everything else."""
    match = Struct()
    match.update({"tlsMode": "istio"})
    return [
        Cluster.TransportSocketMatch(name="tlsMode-istio", match=match, transport_socket=tls_transport_socket(context)),
        Cluster.TransportSocketMatch(
            name="tlsMode-disabled", match=Struct(), transport_socket=raw_buffer_transport_socket()
        ),
    ]


def apply_upstream_tls(
    cluster: Cluster,
    *,
    service: Service,
    port: ServicePort,
    rule: DestinationRule | None,
    subset: Subset | None,
    endpoints: Sequence[Endpoint],
    snapshot: MeshSnapshot,
    sds: bool,
) -> None:
    """Set the cluster's transport socket (or socket matches) for the ``tls`` that applies, as the module says.
    ``endpoints``: the cluster's endpoints (a subset's, for a subset cluster), whose identities are verified."""
    tls = resolve_client_tls(rule, subset, port.number)
    http2 = port.protocol.is_http2
    sni = outbound_sni(port.number, subset.name if subset is not None else "", service.host)
    entry = snapshot.configs.get(service.source)
    entry_sans = entry.subject_alt_names if isinstance(entry, ServiceEntry) else ()
    if tls is None:
        if sds and service.mesh_internal:
            sans = mesh_server_sans(destination_identities(service, endpoints, snapshot.trust_domain), entry_sans)
            cluster.transport_socket_matches.extend(
                _auto_mtls_matches(istio_mutual_tls_context(sni=sni, sans=sans, http2=http2))
            )
        return
    if tls.mode == "DISABLE":
        return
    if tls.mode == "ISTIO_MUTUAL":
        if not sds:
            if cluster.name not in _warned:
                _warned.add(cluster.name)
                log.warning(
                    "istio_mutual_without_sds",
                    cluster=cluster.name,
                    reason="DestinationRule tls ISTIO_MUTUAL needs Citadel's SDS; proxies without it send plaintext",
                )
            return
        if tls.subject_alt_names:
            sans = typed_sans(tls.subject_alt_names)
        else:
            sans = mesh_server_sans(destination_identities(service, endpoints, snapshot.trust_domain), entry_sans)
        context = istio_mutual_tls_context(sni=tls.sni or sni, sans=sans, http2=http2)
    else:
        host_sni = service.host if not service.host.startswith("*") else ""
        build = credential_tls_context if tls.credential_name else simple_tls_context
        context = build(tls, sni=host_sni, default_sans=entry_sans, http2=http2)
    cluster.transport_socket.CopyFrom(tls_transport_socket(context))


def mark_istio_endpoints(
    assignment: ClusterLoadAssignment, endpoints: Sequence[Endpoint], snapshot: MeshSnapshot, port: ServicePort
) -> None:
    """Label the assignment's endpoints that take auto mTLS with ``tlsMode: istio`` (Istio's EDS metadata): the
    WorkloadEntries (sidecars) that do not opt out and whose PeerAuthentication does not DISABLE the port."""
    istio = {
        (e.address, e.port)
        for e in endpoints
        if e.workload is not None
        and (workload := snapshot.workloads.get(e.workload)) is not None
        and istio_tls_endpoint(snapshot, workload, port)
    }
    if not istio:
        return
    for group in assignment.endpoints:
        for lb_endpoint in group.lb_endpoints:
            address = lb_endpoint.endpoint.address.socket_address
            if (address.address, address.port_value) in istio:
                lb_endpoint.metadata.CopyFrom(_ISTIO_TLS_METADATA)


def _istio_tls_metadata() -> Metadata:
    metadata = Metadata()
    metadata.filter_metadata[TRANSPORT_SOCKET_MATCH_KEY].update({"tlsMode": "istio"})
    return metadata


_ISTIO_TLS_METADATA = _istio_tls_metadata()
