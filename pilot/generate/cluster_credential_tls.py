"""TLS origination with a DestinationRule's ``credentialName`` (Istio ``buildUpstreamClusterTLSContext`` with
``ApplyCustomSDSToClientCommonTLSContext``): the certificates come from a Kubernetes Secret of the client proxy's
namespace, which Citadel serves over the proxy's ``sds-grpc`` cluster, instead of files.

- MUTUAL: the client certificate and key are the SDS secret ``kubernetes://<name>``;
- SIMPLE and MUTUAL: unless ``insecureSkipVerify``, a combined validation context: the trusted CAs are the SDS
  secret ``kubernetes://<name>-cacert`` (the Secret ``<name>-cacert``, else ``<name>``'s ``ca.crt``/``cacert``),
  and the static part checks the server's SANs: ``subjectAltNames``, else the ServiceEntry's, else the SNI (the
  same auto SAN validation as with files);
- SNI: ``sni``, else the service host.

The SDS references have an initial fetch timeout (:data:`CREDENTIAL_FETCH_TIMEOUT`), unlike the workload
certificate's: a sidecar in a namespace without the Secret would otherwise never finish warming its clusters, and
Envoy starts no listener before they are (Istio avoids it by applying ``credentialName`` on sidecars only with a
``workloadSelector``). After the timeout the cluster is up without the secret, and Envoy fails its connections
("Secret is not supplied by SDS") until Citadel sends it: closed, never plaintext.

The names carry no namespace: Citadel resolves them in the namespace of the proxy that asks, so the cluster's bytes
are the same for every proxy that shares it. Without SDS (no Citadel in the proxy's bootstrap) the secrets cannot
be fetched, and sending the request without the client certificate, or unverified, would be weaker than the rule:
:func:`credential_unavailable_cluster` fails such requests instead (503, no endpoints), with a warning.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import CertificateValidationContext
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import SdsSecretConfig
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import CommonTlsContext, UpstreamTlsContext

from meshplane.credential_names import credential_sds_name
from pilot.config.types import ClientTLSSettings
from pilot.generate._protos import duration, load_assignment
from pilot.generate._tls import sds_secret_config, sidecar_tls_params, typed_sans
from pilot.generate.cluster_traffic_policy import DEFAULT_CONNECT_TIMEOUT

__all__ = ["CREDENTIAL_FETCH_TIMEOUT", "credential_tls_context", "credential_unavailable_cluster"]

CREDENTIAL_FETCH_TIMEOUT = 5.0  # seconds a cluster waits for a credential before it starts without it

log = structlog.get_logger(__name__)

_warned: set[str] = set()  # clusters already warned about (once per process, not per snapshot)


def credential_tls_context(
    tls: ClientTLSSettings, *, sni: str, default_sans: Sequence[str], http2: bool
) -> UpstreamTlsContext:
    """The upstream TLS context of a SIMPLE or MUTUAL ``tls`` with ``credential_name``, as the module says."""
    common = CommonTlsContext(tls_params=sidecar_tls_params())
    if http2:
        common.alpn_protocols.append("h2")
    if tls.mode == "MUTUAL":
        common.tls_certificate_sds_secret_configs.append(_credential_secret(credential_sds_name(tls.credential_name)))
    if not tls.insecure_skip_verify:
        sans = tls.subject_alt_names or default_sans or (tls.sni or sni,)
        combined = common.combined_validation_context
        combined.default_validation_context.CopyFrom(
            CertificateValidationContext(match_typed_subject_alt_names=typed_sans(sans))
        )
        combined.validation_context_sds_secret_config.CopyFrom(
            _credential_secret(credential_sds_name(tls.credential_name, ca=True))
        )
    return UpstreamTlsContext(common_tls_context=common, sni=tls.sni or sni)


def _credential_secret(name: str) -> SdsSecretConfig:
    return sds_secret_config(name, initial_fetch_timeout=CREDENTIAL_FETCH_TIMEOUT)


def credential_unavailable_cluster(name: str, credential_name: str) -> Cluster:
    """The cluster ``name`` for a proxy without SDS when its ``tls`` names ``credential_name``: STATIC with no
    endpoints (requests fail with 503 instead of leaving without the rule's TLS)."""
    if name not in _warned:
        _warned.add(name)
        log.warning(
            "credential_name_without_sds",
            cluster=name,
            credential_name=credential_name,
            reason="DestinationRule tls.credentialName needs Citadel's SDS; proxies without it get no endpoints",
        )
    return Cluster(
        name=name,
        type=Cluster.DiscoveryType.STATIC,
        connect_timeout=duration(DEFAULT_CONNECT_TIMEOUT),
        lb_policy=Cluster.LbPolicy.ROUND_ROBIN,
        load_assignment=load_assignment(name, ()),
    )
