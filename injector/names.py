"""What Istio's injector names, and what meshplane's sidecar expects where: container and volume names, the paths
of the projected token and the root certificate, and the labels and annotations the injector reads and writes."""

from __future__ import annotations

__all__ = [
    "CANONICAL_NAME_LABEL",
    "CANONICAL_REVISION_LABEL",
    "IGNORED_NAMESPACES",
    "INIT_CONTAINER",
    "INJECTION_NAMESPACE_LABEL",
    "INJECT_KEY",
    "PROXY_CONFIG_ANNOTATION",
    "PROXY_CONTAINER",
    "REVISION_LABEL",
    "ROOT_CERT_CONFIGMAP",
    "ROOT_CERT_DIR",
    "ROOT_CERT_FILE",
    "ROOT_CERT_VOLUME",
    "STATUS_ANNOTATION",
    "TOKEN_AUDIENCE",
    "TOKEN_DIR",
    "TOKEN_FILE",
    "TOKEN_VOLUME",
    "WORK_DIR",
    "WORK_VOLUME",
]

INIT_CONTAINER = "istio-init"  # installs the capture (NET_ADMIN), then exits
PROXY_CONTAINER = "istio-proxy"  # meshplane-agent sidecar: the DNS agent and Envoy, uid 1337

INJECT_KEY = "sidecar.istio.io/inject"  # pod label (wins) or annotation: "true" opts in, "false" opts out
STATUS_ANNOTATION = "sidecar.istio.io/status"  # written by the injector: what it added (an injected pod has it)
PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"  # Istio's ProxyConfig, YAML
INJECTION_NAMESPACE_LABEL = "istio-injection"  # "enabled" on a namespace injects its pods
REVISION_LABEL = "istio.io/rev"  # revision-based injection: another injector's pods, never this one's
CANONICAL_NAME_LABEL = "service.istio.io/canonical-name"
CANONICAL_REVISION_LABEL = "service.istio.io/canonical-revision"
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public"})  # Istio's: never injected, whatever the labels

# The projected service-account token Citadel checks with TokenReview (Istio's audience and path)
TOKEN_VOLUME = "istio-token"
TOKEN_AUDIENCE = "istio-ca"
TOKEN_DIR = "/var/run/secrets/tokens"
TOKEN_FILE = "istio-token"
# The mesh's root certificate, from the ConfigMap Citadel writes into every namespace (Istio's names)
ROOT_CERT_VOLUME = "istiod-ca-cert"
ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"
ROOT_CERT_DIR = "/var/run/secrets/istio"
ROOT_CERT_FILE = "root-cert.pem"
# The sidecar's bootstrap and copies (agent.container_sidecar's --work-dir is <WORK_DIR>/proxy, made by uid 1337)
WORK_VOLUME = "istio-envoy"
WORK_DIR = "/var/lib/istio"
