"""The mesh model: one immutable snapshot built from accepted config and the service registries (``registry``:
the ServiceEntry registry first, in-memory ones for tests, Kubernetes later), and proxies resolved against it."""

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
from pilot.model.mesh_settings import DEFAULT_MESH_SETTINGS, MESH_CONFIG_KIND, MeshSettings, OutboundTrafficPolicy
from pilot.model.mtls import (
    EffectiveMtlsMode,
    MtlsPolicies,
    effective_mtls_mode,
    istio_tls_endpoint,
    mtls_policies,
    workload_port,
)
from pilot.model.policies import MIXER_PROVIDER, WorkloadPolicies, policy_selects, workload_policies
from pilot.model.registry import (
    KUBERNETES_PROVIDER,
    SERVICE_ENTRY_PROVIDER,
    MemoryRegistry,
    RegistryState,
    ServiceRegistry,
    aggregate_registries,
)
from pilot.model.registry_service_entry import SERVICE_ENTRIES, ServiceEntryRegistry
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
    ShadowedService,
)

__all__ = [
    "DEFAULT_DOMAIN_SUFFIX",
    "DEFAULT_MESH_SETTINGS",
    "DEFAULT_ROOT_NAMESPACE",
    "DEFAULT_TRUST_DOMAIN",
    "KUBERNETES_PROVIDER",
    "MESH_CONFIG_KIND",
    "MIXER_PROVIDER",
    "SERVICE_ENTRIES",
    "SERVICE_ENTRY_PROVIDER",
    "EffectiveMtlsMode",
    "Endpoint",
    "MemoryRegistry",
    "MeshSettings",
    "MeshSnapshot",
    "MtlsPolicies",
    "NodeIdError",
    "OutboundTrafficPolicy",
    "Proxy",
    "ProxyNode",
    "RegistryState",
    "Service",
    "ServiceEntryRegistry",
    "ServiceInstance",
    "ServiceRegistry",
    "ShadowedService",
    "WorkloadPolicies",
    "aggregate_registries",
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
