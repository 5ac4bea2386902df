"""TLS pieces shared by the listener and cluster builders: SDS references to Citadel's secrets, transport sockets,
SAN matchers and the TLS versions sidecars speak (Istio ``security/model``, ``authn/utils``).

Every SDS reference is built by :func:`sds_secret_config` and is byte-for-byte the same in every resource and for
every proxy: Envoy shares one SDS subscription per (config source, secret name), so the workload certificate is
fetched and rotated once per sidecar however many listeners and clusters use it. The references carry no token:
the bootstrap's ``sds-grpc`` cluster adds it to the stream (see ``envoy_bootstrap.bootstrap``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from envoy.config.core.v3.base_pb2 import TransportSocket
from envoy.config.core.v3.config_source_pb2 import ApiConfigSource, ApiVersion, ConfigSource
from envoy.config.core.v3.grpc_service_pb2 import GrpcService
from envoy.extensions.transport_sockets.raw_buffer.v3.raw_buffer_pb2 import RawBuffer
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import SubjectAltNameMatcher, TlsParameters
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import SdsSecretConfig
from envoy.type.matcher.v3.string_pb2 import StringMatcher

from meshplane.identity import SDS_CLUSTER, SDS_NODE_METADATA
from pilot.generate._protos import duration
from pilot.model.types import Proxy

__all__ = [
    "RAW_BUFFER_TRANSPORT_SOCKET",
    "TLS_TRANSPORT_SOCKET",
    "exact_uri_sans",
    "has_sds",
    "raw_buffer_transport_socket",
    "sds_secret_config",
    "sidecar_tls_params",
    "tls_transport_socket",
    "trust_domain_uri_san",
    "typed_sans",
]

TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
RAW_BUFFER_TRANSPORT_SOCKET = "envoy.transport_sockets.raw_buffer"


def has_sds(proxy: Proxy) -> bool:
    """Whether the proxy's bootstrap wired Citadel's SDS (node metadata ``MESHPLANE_SDS: "true"``): only then can
    its config reference the ``sds-grpc`` cluster; without it Envoy would reject the whole update."""
    return proxy.node.metadata.get(SDS_NODE_METADATA) == "true"


def sds_secret_config(name: str, *, initial_fetch_timeout: float = 0) -> SdsSecretConfig:
    """Istio ``ConstructSdsSecretConfig``: secret ``name`` over SotW gRPC from the bootstrap's ``sds-grpc``
    cluster. No initial fetch timeout by default (Istio's choice): a listener or cluster waits for its certificate
    instead of starting without one; ``initial_fetch_timeout`` seconds for a secret that may never come."""
    return SdsSecretConfig(
        name=name,
        sds_config=ConfigSource(
            api_config_source=ApiConfigSource(
                api_type=ApiConfigSource.ApiType.GRPC,
                transport_api_version=ApiVersion.V3,
                grpc_services=[GrpcService(envoy_grpc=GrpcService.EnvoyGrpc(cluster_name=SDS_CLUSTER))],
                set_node_on_first_message_only=True,
            ),
            initial_fetch_timeout=duration(initial_fetch_timeout),
            resource_api_version=ApiVersion.V3,
        ),
    )


def sidecar_tls_params() -> TlsParameters:
    """TLS 1.2 to 1.3, as Istio's sidecars (``defaultUpstreamCommonTLSContext``, ``BuildInboundTLS``)."""
    return TlsParameters(
        tls_minimum_protocol_version=TlsParameters.TlsProtocol.TLSv1_2,
        tls_maximum_protocol_version=TlsParameters.TlsProtocol.TLSv1_3,
    )


def tls_transport_socket(context: Any) -> TransportSocket:
    """A TLS transport socket carrying ``context`` (an Upstream- or DownstreamTlsContext)."""
    socket = TransportSocket(name=TLS_TRANSPORT_SOCKET)
    socket.typed_config.Pack(context)
    return socket


def raw_buffer_transport_socket() -> TransportSocket:
    """Plaintext, said explicitly (Istio's ``RawBufferTransportSocket``, used by the ``tlsMode-disabled`` match)."""
    socket = TransportSocket(name=RAW_BUFFER_TRANSPORT_SOCKET)
    socket.typed_config.Pack(RawBuffer())
    return socket


def trust_domain_uri_san(trust_domain: str) -> SubjectAltNameMatcher:
    """Any SPIFFE ID of the trust domain: a URI SAN starting ``spiffe://<trust domain>/``."""
    return SubjectAltNameMatcher(
        san_type=SubjectAltNameMatcher.SanType.URI, matcher=StringMatcher(prefix=f"spiffe://{trust_domain}/")
    )


def exact_uri_sans(uris: Iterable[str]) -> list[SubjectAltNameMatcher]:
    """One exact URI SAN matcher per identity (Istio ``StringToExactMatch`` over the service accounts)."""
    return [
        SubjectAltNameMatcher(san_type=SubjectAltNameMatcher.SanType.URI, matcher=StringMatcher(exact=uri))
        for uri in uris
    ]


def typed_sans(names: Iterable[str]) -> list[SubjectAltNameMatcher]:
    """Exact matchers for SANs written in a DestinationRule or ServiceEntry: a URI (``spiffe://...``) when it has
    a scheme, an IP address when it parses as one, else a DNS name (Envoy matches wildcard certificate names)."""
    matchers: list[SubjectAltNameMatcher] = []
    for name in names:
        if "://" in name:
            san_type = SubjectAltNameMatcher.SanType.URI
        elif _is_ip(name):
            san_type = SubjectAltNameMatcher.SanType.IP_ADDRESS
        else:
            san_type = SubjectAltNameMatcher.SanType.DNS
        matchers.append(SubjectAltNameMatcher(san_type=san_type, matcher=StringMatcher(exact=name)))
    return matchers


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
