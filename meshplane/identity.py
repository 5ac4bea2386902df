"""Names every part of the mesh agrees on for identities: SPIFFE IDs, SDS resource names, Citadel's own name.

Pilot (mTLS config), envoy_bootstrap (the SDS cluster) and Citadel (issuing) all import these, so a name is
written once.
"""

from __future__ import annotations

import re

__all__ = [
    "CITADEL_SERVER_NAME",
    "DEFAULT_TRUST_DOMAIN",
    "SDS_CLUSTER",
    "SDS_NODE_METADATA",
    "SDS_ROOT_CA",
    "SDS_WORKLOAD_CERT",
    "TLS_MODE_LABEL",
    "parse_spiffe_id",
    "spiffe_id",
]

DEFAULT_TRUST_DOMAIN = "cluster.local"
SDS_WORKLOAD_CERT = "default"  # Istio's SDS name for the workload's certificate chain and key
SDS_ROOT_CA = "ROOTCA"  # Istio's SDS name for the trust bundle
SDS_CLUSTER = "sds-grpc"  # the bootstrap cluster that points at Citadel's SDS endpoint
SDS_NODE_METADATA = "MESHPLANE_SDS"  # node metadata key a bootstrap sets ("true") when its sidecar has SDS
CITADEL_SERVER_NAME = "citadel.istio-system.svc"  # DNS SAN of Citadel's serving certificate; sidecars verify it
TLS_MODE_LABEL = "security.istio.io/tlsMode"  # Istio's endpoint label for auto mTLS ("istio" = has a sidecar)

_SPIFFE = re.compile(r"^spiffe://(?P<td>[a-z0-9.\-_]+)/ns/(?P<ns>[a-z0-9\-]+)/sa/(?P<sa>[a-z0-9.\-]+)$")


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    """``spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>``, Istio's identity format."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account or 'default'}"


def parse_spiffe_id(value: str) -> tuple[str, str, str]:
    """(trust domain, namespace, service account) of an Istio-form SPIFFE ID; ValueError naming the form."""
    match = _SPIFFE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a SPIFFE ID of the form spiffe://<trust-domain>/ns/<namespace>/sa/<sa>")
    return match["td"], match["ns"], match["sa"]
