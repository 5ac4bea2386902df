"""Variables a ProxyConfig adds to the Envoy process's environment (the ProxyConfig kind's ``environmentVariables``,
``proxyMetadata`` of the ``proxy.istio.io/config`` annotation and of MeshConfig ``defaultConfig``): which names can
be one, and which ones Istio's agent interprets itself, so that meshplane, which has no such agent, refuses them.

Shared by Pilot's validation and the injector's (``proxy.istio.io/config``), and the node metadata key a launcher
sends the annotation's ProxyConfig in (as Istio's agent sends the pod's annotations)."""

from __future__ import annotations

import re

__all__ = [
    "PROXY_CONFIG_ANNOTATION_METADATA",
    "PROXY_CONFIG_FIELDS",
    "agent_variable_problem",
    "environment_name_error",
]

# The fields of Istio's mesh ProxyConfig message (istio.io/api mesh/v1alpha1/proxy.proto), as YAML spells them: what
# ``proxy.istio.io/config`` and MeshConfig ``defaultConfig`` may hold
PROXY_CONFIG_FIELDS = frozenset(
    {
        "configPath", "binaryPath", "serviceCluster", "drainDuration", "parentShutdownDuration", "discoveryAddress",
        "discoveryRefreshDelay", "zipkinAddress", "statsdUdpAddress", "envoyMetricsServiceAddress", "proxyAdminPort",
        "availabilityZone", "controlPlaneAuthPolicy", "customConfigFile", "statNameLength", "concurrency",
        "proxyBootstrapTemplatePath", "interceptionMode", "tracing", "sds", "envoyAccessLogService",
        "envoyMetricsService", "proxyMetadata", "runtimeValues", "statusPort", "extraStatTags", "gatewayTopology",
        "terminationDrainDuration", "meshId", "readinessProbe", "proxyStatsMatcher", "holdApplicationUntilProxyStarts",
        "caCertificatesPem", "image", "privateKeyProvider", "proxyHeaders", "fileFlushInterval", "fileFlushMinSizeKb",
        "startupProbe",
    }
)  # fmt: skip

# Node metadata (JSON ``{"concurrency": N, "proxyMetadata": {...}}``): the pod's ``proxy.istio.io/config`` fields
# Pilot merges into the proxy's effective ProxyConfig (``pilot.model.proxy_config``)
PROXY_CONFIG_ANNOTATION_METADATA = "PROXY_CONFIG_ANNOTATION"

_NAME = re.compile(r"[\x21-\x3c\x3e-\x7e]+")  # Kubernetes: printable ASCII but '=' (and no space)
# Istio's agent reads these from its environment (pilot/cmd/pilot-agent, pkg/istio-agent): in Istio they change what
# the agent does; meshplane's launcher has no such settings
_AGENT_VARIABLES = frozenset(
    {
        "BOOTSTRAP_XDS_AGENT", "CA_ADDR", "CA_ROOT_CA", "DNS_PROXY_ADDR", "EXIT_ON_ZERO_ACTIVE_CONNECTIONS",
        "MINIMUM_DRAIN_DURATION", "OUTPUT_CERTS", "PILOT_CERT_PROVIDER", "PROXY_CONFIG_XDS_AGENT",
        "PROXY_XDS_VIA_AGENT", "XDS_ROOT_CA",
    }
)  # fmt: skip


def environment_name_error(name: str) -> str | None:
    """Why ``name`` cannot be an environment variable of the proxy (None: it can)."""
    if not _NAME.fullmatch(name):
        return f"invalid environment variable name {name!r}: printable ASCII characters other than '=' only"
    return None


def agent_variable_problem(name: str) -> str | None:
    """ "not supported" for a variable Istio's agent interprets (None for one only Envoy's environment sees)."""
    if name.startswith("ISTIO_META_"):
        return (
            "not supported by meshplane yet (Istio's agent turns ISTIO_META_* variables into the proxy's node "
            "metadata; meshplane's launcher does not)"
        )
    if name.startswith("ISTIO_") or name in _AGENT_VARIABLES:
        return "not supported by meshplane yet (a setting of Istio's agent, which meshplane does not run)"
    return None
