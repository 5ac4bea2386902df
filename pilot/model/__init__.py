"""The mesh model: one immutable snapshot built from accepted config, and proxies resolved against it."""

from pilot.model.build import (
    NodeIdError,
    build_snapshot,
    destination_rule_for,
    host_matches,
    labels_match,
    parse_node_id,
    resolve_host,
    resolve_proxy,
    virtual_services_for,
)
from pilot.model.mtls import (
    EffectiveMtlsMode,
    MtlsPolicies,
    effective_mtls_mode,
    istio_tls_endpoint,
    mtls_policies,
    workload_port,
)
from pilot.model.policies import MIXER_PROVIDER, WorkloadPolicies, policy_selects, workload_policies
from pilot.model.types import (
    DEFAULT_DOMAIN_SUFFIX,
    DEFAULT_ROOT_NAMESPACE,
    DEFAULT_TRUST_DOMAIN,
    Endpoint,
    MeshSnapshot,
    Proxy,
    ProxyNode,
    Service,
    ServiceInstance,
)

__all__ = [
    "DEFAULT_DOMAIN_SUFFIX",
    "DEFAULT_ROOT_NAMESPACE",
    "DEFAULT_TRUST_DOMAIN",
    "MIXER_PROVIDER",
    "EffectiveMtlsMode",
    "Endpoint",
    "MeshSnapshot",
    "MtlsPolicies",
    "NodeIdError",
    "Proxy",
    "ProxyNode",
    "Service",
    "ServiceInstance",
    "WorkloadPolicies",
    "build_snapshot",
    "destination_rule_for",
    "effective_mtls_mode",
    "host_matches",
    "istio_tls_endpoint",
    "labels_match",
    "mtls_policies",
    "parse_node_id",
    "policy_selects",
    "resolve_host",
    "resolve_proxy",
    "virtual_services_for",
    "workload_policies",
    "workload_port",
]
