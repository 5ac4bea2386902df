"""The mesh as Pilot sees it: services, their endpoints, workloads and the rules that apply, all immutable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from meshplane.identity import DEFAULT_TRUST_DOMAIN
from pilot.config.hosts import DEFAULT_DOMAIN_SUFFIX  # shared with the config layer
from pilot.config.types import (
    EMPTY_LABELS,
    AuthorizationPolicy,
    ConfigKey,
    DestinationRule,
    EnvoyFilterPatch,
    Gateway,
    Labels,
    MixerPolicy,
    PeerAuthentication,
    RequestAuthentication,
    Resolution,
    Resource,
    ServicePort,
    Telemetry,
    VirtualService,
    WorkloadEntry,
)
from pilot.model.client_view import EMPTY_VIEW, NO_LOCALITY_NEEDS, ClientView, LocalityNeeds
from pilot.model.destination_rules import DestinationRuleIndex
from pilot.model.envoy_filters import EnvoyFilterIndex
from pilot.model.memo import SnapshotMemo
from pilot.model.mesh_settings import DEFAULT_MESH_SETTINGS, MeshSettings
from pilot.model.proxy_config import ProxyConfigIndex
from pilot.model.sidecar_index import SidecarIndex

__all__ = [
    "DEFAULT_DOMAIN_SUFFIX",
    "DEFAULT_ROOT_NAMESPACE",
    "DEFAULT_TRUST_DOMAIN",
    "EMPTY_METADATA",
    "Endpoint",
    "MeshSnapshot",
    "Proxy",
    "ProxyNode",
    "Service",
    "ServiceInstance",
    "ShadowedService",
]

DEFAULT_ROOT_NAMESPACE = "istio-system"  # Istio's root namespace: mesh-wide policies live there
EMPTY_METADATA: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One address a service port is reachable at."""

    address: str
    port: int  # where to connect: a sidecar's inbound port (== service port) or the endpoint's own port
    labels: Labels = field(default_factory=lambda: MappingProxyType({}))
    weight: int = 1
    workload: ConfigKey | None = None  # the WorkloadEntry behind it; None for inline ServiceEntry endpoints
    service_account: str = ""
    locality: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """A host in a service registry (e.g. from one ServiceEntry), with its endpoints per service port number."""

    host: str  # FQDN as written in the ServiceEntry
    namespace: str
    ports: tuple[ServicePort, ...]
    resolution: Resolution
    mesh_internal: bool
    endpoints: Mapping[int, tuple[Endpoint, ...]]  # service port number -> endpoints, sorted by (address, port)
    source: ConfigKey
    addresses: tuple[str, ...] = ()  # the registry's own VIPs for it (a ClusterIP); else one is allocated (vips.py)
    # A Kubernetes Service's pod selector (None: none, or not a Kubernetes Service): which gateway pods it fronts,
    # whose listeners bind its ports' targetPorts (``pilot.model.gateway_target_ports``)
    selector: Labels | None = None

    def port(self, number: int) -> ServicePort | None:
        for p in self.ports:
            if p.number == number:
                return p
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceInstance:
    """A workload serving one port of a service: what a sidecar's inbound listener is built from."""

    service: Service
    port: ServicePort
    target_port: int  # the app's port on the workload address
    workload: WorkloadEntry


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowedService:
    """A service of one registry not in the snapshot: another registry's service has its host."""

    service: Service
    registry: str  # the name of its registry
    shadowed_by: str  # the name of the registry whose service has the host


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyNode:
    """What an Envoy says about itself, from its node id ``sidecar~<ip>~<workload>.<namespace>~<ns>.svc.<suffix>``."""

    id: str
    type: str  # "sidecar", or "router" for gateways
    ip: str
    workload_name: str
    namespace: str
    dns_domain: str
    cluster: str = ""  # Envoy's node.cluster, informational
    # The string values of Envoy's node.metadata (e.g. ``MESHPLANE_SDS``). Compared but not hashed: nodes that
    # differ only in metadata are different proxies (their config may differ) that share a hash bucket.
    metadata: Mapping[str, str] = field(default_factory=lambda: EMPTY_METADATA, hash=False)
    # Istio's node metadata ``LABELS`` (a struct of strings): the labels Gateways select a router by when it has no
    # workload in the registry (``pilot.model.gateways.gateway_labels``). Compared, not hashed, as ``metadata``.
    labels: Labels = field(default_factory=lambda: EMPTY_LABELS, hash=False)
    # Envoy's node.locality as ``region/zone/subzone`` (empty: not set): the locality of a proxy without a workload
    # in the registry (a gateway), for locality load balancing (``pilot.model.client_view``).
    locality: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Proxy:
    """A connected proxy resolved against one snapshot: its WorkloadEntry (if any) and the ports it serves."""

    node: ProxyNode
    workload: WorkloadEntry | None
    instances: tuple[ServiceInstance, ...] = ()
    # The workload's labels that some VirtualService's HTTP ``sourceLabels`` names (``MeshSnapshot.source_label_keys``),
    # sorted: the only labels the proxy's route tables depend on, so proxies that agree on them share the tables.
    source_labels: tuple[tuple[str, str], ...] = ()
    # Which workloadSelector DestinationRules select it, and its locality when some rule balances by locality: with
    # the namespace, what its outbound clusters, endpoints and routes depend on (``pilot.model.client_view``).
    view: ClientView = EMPTY_VIEW
    # The Sidecar that applies to it (``pilot.model.sidecar_index``); None: none does. With the namespace, the key of
    # its outbound scopes (``pilot.model.sidecar_scope``): proxies under one Sidecar share their outbound config.
    sidecar: ConfigKey | None = None
    # The EnvoyFilter patches that apply to it, in order (``pilot.model.envoy_filters``): with the rest, the key of
    # the shared resources they patch (``pilot.generate.registry``).
    envoy_filter_patches: tuple[EnvoyFilterPatch, ...] = ()

    @property
    def namespace(self) -> str:
        return self.node.namespace

    @property
    def address(self) -> str:
        return self.workload.address if self.workload is not None else self.node.ip

    @property
    def labels(self) -> Labels:
        return self.workload.labels if self.workload is not None else EMPTY_LABELS


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshSnapshot:
    """One consistent, immutable view of the mesh. Built whole from the accepted config; swapped, never edited.

    ``changed_kinds`` says which config kinds differ from the previous snapshot, so that each xDS type can
    decide whether it has to be regenerated at all (Istio's PushRequest.ConfigsUpdated).
    """

    version: int
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
    trust_domain: str = DEFAULT_TRUST_DOMAIN  # the SPIFFE trust domain of the mesh's workload identities
    root_namespace: str = DEFAULT_ROOT_NAMESPACE  # where a PeerAuthentication without selector is mesh-wide
    mesh: MeshSettings = DEFAULT_MESH_SETTINGS  # the rest of MeshConfig that generators read
    configs: Mapping[ConfigKey, Resource] = field(default_factory=lambda: MappingProxyType({}))
    services: Mapping[str, Service] = field(default_factory=lambda: MappingProxyType({}))  # FQDN -> Service
    vips: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))  # FQDN -> VIPs (vips.py)
    destination_rules: Mapping[str, DestinationRule] = field(default_factory=lambda: MappingProxyType({}))
    # the rules by the namespaces they are exported to: what each proxy sees (``destination_rule_for``)
    destination_rule_index: DestinationRuleIndex = field(default_factory=DestinationRuleIndex)
    virtual_services: Mapping[str, tuple[VirtualService, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )  # FQDN host (or wildcard host) -> VirtualServices naming it, oldest rule first (namespace/name order)
    # every VirtualService with hosts (sidecar- and gateway-bound), roots merged with their delegates
    # (``pilot.model.virtual_service_merge.resolve_delegates``), in ConfigKey order
    resolved_virtual_services: Mapping[ConfigKey, VirtualService] = field(default_factory=lambda: MappingProxyType({}))
    workloads: Mapping[ConfigKey, WorkloadEntry] = field(default_factory=lambda: MappingProxyType({}))
    instances: Mapping[ConfigKey, tuple[ServiceInstance, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )  # WorkloadEntry key -> the service ports it serves
    peer_authentications: Mapping[str, tuple[PeerAuthentication, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )  # namespace -> its PeerAuthentications in ConfigKey (namespace/name) order; see pilot.model.mtls
    authorization_policies: Mapping[str, tuple[AuthorizationPolicy, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )  # namespace -> its AuthorizationPolicies in ConfigKey order; see pilot.model.policies
    mixer_policies: Mapping[str, tuple[MixerPolicy, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )  # namespace -> its AccessLists and RateLimits in ConfigKey order; see pilot.model.policies
    request_authentications: Mapping[str, tuple[RequestAuthentication, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )  # namespace -> its RequestAuthentications in ConfigKey order; see pilot.model.request_authn
    telemetries: Mapping[str, tuple[Telemetry, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )  # namespace -> its Telemetries in ConfigKey order; see pilot.model.telemetry
    gateways: tuple[Gateway, ...] = ()  # every Gateway, in ConfigKey order; see pilot.model.gateways
    # Gateway ``<namespace>/<name>`` -> the VirtualServices bound to it (top-level or match ``gateways``), key order
    gateway_virtual_services: Mapping[str, tuple[VirtualService, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    sidecars: SidecarIndex = field(default_factory=SidecarIndex)  # see pilot.model.sidecar_index
    envoy_filters: EnvoyFilterIndex = field(default_factory=EnvoyFilterIndex)  # see pilot.model.envoy_filters
    proxy_configs: ProxyConfigIndex = field(default_factory=ProxyConfigIndex)  # see pilot.model.proxy_config
    changed_kinds: frozenset[str] = frozenset()
    source_label_keys: frozenset[str] = frozenset()  # the label keys sidecar VirtualServices' sourceLabels name
    locality_needs: LocalityNeeds = NO_LOCALITY_NEEDS  # whether proxies' views carry their locality (client_view)
    shadowed_services: tuple[ShadowedService, ...] = ()  # see pilot.model.registry
    registry_versions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # name -> version
    # name -> endpoints_version (``pilot.model.registry.RegistryState``)
    registry_endpoints_versions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # what generators derive from this snapshot alone, computed once (``pilot.model.memo``; not part of its value)
    derived: SnapshotMemo = field(default_factory=SnapshotMemo, init=False, compare=False, hash=False, repr=False)
