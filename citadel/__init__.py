"""Citadel: the mesh's certificate authority. Workload SPIFFE identities over SDS and a CSR API, with rotation.

- ``ca``: pure crypto (roots, workload and serving certificates, CSRs, chain verification);
- ``ca_dir``: the CA on disk (self-signed root or Istio's plug-in ``cacerts`` layout, root rotation);
  ``ca_secret``, ``ca_secret_store``: the self-signed CA kept in a Kubernetes Secret (Istio's ``istio-ca-secret``);
- ``tokens``: the tokens workloads prove their identity with; ``kube_tokens`` and ``token_review``: Kubernetes
  service-account tokens (TokenReview) beside them;
- ``root_configmaps``, ``root_cert_publisher``: the ``istio-ca-root-cert`` ConfigMap in every namespace;
- ``server``, ``sds``, ``csr``, ``rotation``: the gRPC endpoints and what keeps certificates fresh.
"""

from citadel.ca import SigningCA
from citadel.ca_dir import (
    CAState,
    load_ca,
    load_or_create_ca,
    load_or_create_token_key,
    retire_previous_root,
    rotate_root,
)
from citadel.errors import (
    CAError,
    CertificateVerificationError,
    CitadelError,
    CSRError,
    IdentityMismatchError,
    KubeApiError,
    TokenError,
)
from citadel.tokens import Identity, issue_token, verify_token

__all__ = [
    "CAError",
    "CAState",
    "CSRError",
    "CertificateVerificationError",
    "CitadelError",
    "Identity",
    "IdentityMismatchError",
    "KubeApiError",
    "SigningCA",
    "TokenError",
    "issue_token",
    "load_ca",
    "load_or_create_ca",
    "load_or_create_token_key",
    "retire_previous_root",
    "rotate_root",
    "verify_token",
]
