"""How an inbound listener accepts connections under PeerAuthentication (Istio ``buildInboundFilterchains``,
``BuildInboundTLS``).

For a proxy with Citadel's SDS, per inbound port, with the mode ``pilot.model.effective_mtls_mode`` gives for the
workload's port:

- STRICT: one filter chain terminating mutual TLS: the SDS certificate ``default``, a client certificate required,
  verified against the ``ROOTCA`` bundle and accepted for any SPIFFE ID of the mesh's trust domain;
- PERMISSIVE (Istio ``inboundPermissive{HTTP,TCP}FilterChainMatchWithMxcOptions``): the TLS inspector, then that
  chain for a TLS handshake offering a mesh ALPN (``transport_protocol: tls`` and ``application_protocols``
  ``MESH_ALPNS``: what mesh clients' sidecars offer), a plaintext chain for the others (``raw_buffer``), and, on
  a TCP port only, a chain passing any other TLS (the app's own, from a caller outside the mesh) through to the
  app as TCP: ``transport_protocol: tls`` without ALPN match, the port's tcp_proxy without a transport socket.
  An HTTP port has no such chain, as in Istio ("explicitly declared as HTTP"): TLS without a mesh ALPN matches
  no chain there and the connection is closed;
- DISABLE: one plaintext chain.

STRICT matches no ALPN, as in Istio: every TLS handshake meets the mTLS chain, one without a mesh certificate fails.
The TLS inspector reads the ALPN of the ClientHello; no ``http_inspector`` is needed for these matches.

The mTLS chain's own ALPN is Istio's server side (``h2``, ``http/1.1``): never ``istio``, which would stand in for
HTTP/2 negotiation.

On HTTP ports the TLS chain sets ``x-forwarded-client-cert`` to the verified caller's SPIFFE ID
(``SANITIZE_SET``, ``URI=spiffe://...``); plaintext chains remove any ``x-forwarded-client-cert`` a caller sent,
so that nobody can claim an identity without a certificate.

A proxy without SDS keeps the plaintext listener it had before mTLS existed; a STRICT port on it cannot be
enforced, which is logged once per proxy and port.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain, FilterChainMatch, ListenerFilter
from envoy.extensions.filters.listener.tls_inspector.v3.tls_inspector_pb2 import TlsInspector
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import CertificateValidationContext
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import CommonTlsContext, DownstreamTlsContext

from meshplane.identity import SDS_ROOT_CA, SDS_WORKLOAD_CERT
from pilot.generate._tls import (
    has_sds,
    sds_secret_config,
    sidecar_tls_params,
    tls_transport_socket,
    trust_domain_uri_san,
)
from pilot.model import EffectiveMtlsMode, effective_mtls_mode
from pilot.model.types import MeshSnapshot, Proxy, ServiceInstance

__all__ = [
    "ALPN_DOWNSTREAM",
    "MESH_ALPNS",
    "MTLS_CHAIN",
    "PLAINTEXT_CHAIN",
    "SERVER_TLS_CHAIN",
    "TLS_INSPECTOR",
    "TLS_PASSTHROUGH_CHAIN",
    "InboundSecurity",
    "build_inbound_filter_chains",
    "inbound_security",
    "inbound_tls_context",
    "tls_inspector_filter",
]

log = structlog.get_logger(__name__)

TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
ALPN_DOWNSTREAM = ("h2", "http/1.1")  # Istio's ALPNHttp / ALPNDownstream
# Istio's allIstioMtlsALPNs: what a mesh client's sidecar offers (cluster_tls.ALPN_IN_MESH is ``istio``)
MESH_ALPNS = ("istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2")
MTLS_CHAIN = "mtls"
PLAINTEXT_CHAIN = "plaintext"
SERVER_TLS_CHAIN = "tls"  # a Sidecar ingress listener's ``tls`` (Istio's getTLSFilterChainMatchOptions)
TLS_PASSTHROUGH_CHAIN = "tls-passthrough"  # TLS without a mesh ALPN, passed through to the app (TCP ports)

_warned: set[tuple[str, int]] = set()  # (proxy id, port) already warned about STRICT without SDS


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundSecurity:
    """What an inbound port of a proxy with SDS enforces."""

    mode: EffectiveMtlsMode
    trust_domain: str
    # a Sidecar ingress listener's own TLS (mode DISABLE only): one chain terminating it, no plaintext
    server_tls: DownstreamTlsContext | None = None


NetworkFilter = Callable[[bool], Filter]  # (terminates mTLS?) -> the chain's network filter (HCM or tcp_proxy)


def inbound_security(proxy: Proxy, instance: ServiceInstance, snapshot: MeshSnapshot) -> InboundSecurity | None:
    """The mode of the instance's port for this proxy; None when the proxy has no SDS (plaintext as before)."""
    workload = instance.workload
    mode = effective_mtls_mode(snapshot, workload, instance.target_port)
    if has_sds(proxy):
        return InboundSecurity(mode=mode, trust_domain=snapshot.trust_domain)
    marker = (proxy.node.id, instance.port.number)
    if mode == "STRICT" and marker not in _warned:
        _warned.add(marker)
        log.warning(
            "strict_mtls_not_enforced",
            proxy=proxy.node.id,
            port=instance.port.number,
            workload_port=instance.target_port,
            reason="PeerAuthentication says STRICT but this sidecar has no SDS (no --citadel in its bootstrap): "
            "it cannot terminate mutual TLS and keeps accepting plaintext",
        )
    return None


def inbound_tls_context(trust_domain: str) -> DownstreamTlsContext:
    """Istio ``BuildInboundTLS``: require a client certificate from the mesh root with a SPIFFE ID of the trust
    domain, and present the workload's own certificate."""
    common = CommonTlsContext(
        tls_params=sidecar_tls_params(),
        tls_certificate_sds_secret_configs=[sds_secret_config(SDS_WORKLOAD_CERT)],
        alpn_protocols=list(ALPN_DOWNSTREAM),
    )
    combined = common.combined_validation_context
    combined.default_validation_context.CopyFrom(
        CertificateValidationContext(match_typed_subject_alt_names=[trust_domain_uri_san(trust_domain)])
    )
    combined.validation_context_sds_secret_config.CopyFrom(sds_secret_config(SDS_ROOT_CA))
    return DownstreamTlsContext(common_tls_context=common, require_client_certificate={"value": True})


def build_inbound_filter_chains(
    security: InboundSecurity, network: NetworkFilter, *, tls_passthrough: bool
) -> tuple[list[ListenerFilter], list[FilterChain]]:
    """The listener filters and filter chains of an inbound port under ``security`` (see the module doc);
    ``tls_passthrough``: the port is TCP, so PERMISSIVE passes TLS without a mesh ALPN to the app."""
    if security.server_tls is not None:
        chain = FilterChain(
            name=SERVER_TLS_CHAIN,
            filter_chain_match=FilterChainMatch(transport_protocol="tls"),
            filters=[network(False)],
            transport_socket=tls_transport_socket(security.server_tls),
        )
        return [tls_inspector_filter()], [chain]
    if security.mode == "DISABLE":
        return [], [FilterChain(name=PLAINTEXT_CHAIN, filters=[network(False)])]
    mtls = FilterChain(
        name=MTLS_CHAIN,
        filters=[network(True)],
        transport_socket=tls_transport_socket(inbound_tls_context(security.trust_domain)),
    )
    if security.mode == "STRICT":
        return [], [mtls]
    mtls.filter_chain_match.CopyFrom(FilterChainMatch(transport_protocol="tls", application_protocols=MESH_ALPNS))
    chains = [mtls]
    if tls_passthrough:
        chains.append(
            FilterChain(
                name=TLS_PASSTHROUGH_CHAIN,
                filter_chain_match=FilterChainMatch(transport_protocol="tls"),
                filters=[network(False)],
            )
        )
    plaintext = FilterChain(
        name=PLAINTEXT_CHAIN,
        filter_chain_match=FilterChainMatch(transport_protocol="raw_buffer"),
        filters=[network(False)],
    )
    return [tls_inspector_filter()], [*chains, plaintext]


def tls_inspector_filter() -> ListenerFilter:
    """The listener filter that tells TLS from plaintext (``transport_protocol`` matches)."""
    inspector = ListenerFilter(name=TLS_INSPECTOR)
    inspector.typed_config.Pack(TlsInspector())
    return inspector
