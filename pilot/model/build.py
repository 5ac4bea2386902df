"""Build a MeshSnapshot from accepted config and the service registries, and resolve hosts and proxies against it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from meshplane.names import INTERCEPTION_MODE_METADATA, INTERCEPTION_MODES, INTERCEPTION_REDIRECT
from pilot.config.destination_rule_merge import merge_destination_rules
from pilot.config.hosts import host_matches, lookup_host, resolve_host
from pilot.config.types import (
    EMPTY_LABELS,
    AccessList,
    AuthorizationPolicy,
    ConfigKey,
    DestinationRule,
    EnvoyFilter,
    Gateway,
    Labels,
    MixerPolicy,
    PeerAuthentication,
    ProxyConfig,
    RateLimit,
    RequestAuthentication,
    Resource,
    Sidecar,
    Telemetry,
    VirtualService,
    frozen_labels,
    sorted_by_key,
)
from pilot.model.client_view import EMPTY_VIEW, ClientView, locality_needs, topology_labels
from pilot.model.destination_rules import (
    index_destination_rules,
    selected_destination_rules,
    visible_destination_rule,
)
from pilot.model.envoy_filters import envoy_filter_patches, index_envoy_filters
from pilot.model.gateways import index_gateway_virtual_services
from pilot.model.l4_routes import L4_ROUTES_KIND, l4_routes_changed
from pilot.model.mesh_settings import DEFAULT_MESH_SETTINGS, MESH_CONFIG_KIND, MeshSettings
from pilot.model.proxy_config import index_proxy_configs
from pilot.model.registry import ENDPOINTS_KIND, AggregatedRegistries, ServiceRegistry, aggregate_registries
from pilot.model.registry_service_entry import SERVICE_ENTRIES, labels_match
from pilot.model.sidecar_index import SIDECAR_SCOPE_KIND, SidecarIndex, index_sidecars, scopes_changed, sidecar_for
from pilot.model.types import (
    DEFAULT_DOMAIN_SUFFIX,
    DEFAULT_ROOT_NAMESPACE,
    DEFAULT_TRUST_DOMAIN,
    EMPTY_METADATA,
    MeshSnapshot,
    Proxy,
    ProxyNode,
)
from pilot.model.vips import allocate_vips
from pilot.model.virtual_service_merge import resolve_delegates

__all__ = [
    "NodeIdError",
    "build_snapshot",
    "client_view",
    "destination_rule_for",
    "host_matches",
    "labels_match",
    "parse_node_id",
    "resolve_host",
    "resolve_proxy",
    "virtual_services_for",
]


class NodeIdError(ValueError):
    """An Envoy node Pilot cannot serve: an id not in Istio's ``type~ip~workload.namespace~domain`` form, or node
    metadata asking for what meshplane does not implement."""


def _check_interception_mode(node_id: str, metadata: Mapping[str, str]) -> None:
    """Istio's ``INTERCEPTION_MODE``: REDIRECT when absent (Istio's default). TPROXY and NONE are Istio's other modes,
    whose listeners meshplane does not build: refused rather than given REDIRECT's listeners, which would not work."""
    mode = metadata.get(INTERCEPTION_MODE_METADATA, INTERCEPTION_REDIRECT)
    if mode == INTERCEPTION_REDIRECT:
        return
    if mode in INTERCEPTION_MODES:
        raise NodeIdError(
            f"node {node_id!r}: metadata {INTERCEPTION_MODE_METADATA} {mode} is not supported by meshplane yet "
            f"(its sidecars capture traffic with iptables {INTERCEPTION_REDIRECT})"
        )
    raise NodeIdError(
        f"node {node_id!r}: metadata {INTERCEPTION_MODE_METADATA} must be one of Istio's modes "
        f"{', '.join(INTERCEPTION_MODES)}, got {mode!r}"
    )


def parse_node_id(
    node_id: str,
    cluster: str = "",
    metadata: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    locality: str = "",
) -> ProxyNode:
    """The ProxyNode of an Envoy node id; ``metadata``: the string values of the node's metadata (an
    ``INTERCEPTION_MODE`` other than REDIRECT is refused); ``labels``: its ``LABELS`` metadata; ``locality``: its
    node.locality as ``region/zone/subzone``."""
    parts = node_id.split("~")
    if len(parts) != 4 or not all(parts):
        raise NodeIdError(
            f"node id {node_id!r} is not Istio's form sidecar~<ip>~<workload>.<namespace>~<namespace>.svc.<domain>"
        )
    kind, ip, workload_ns, domain = parts
    workload, sep, namespace = workload_ns.rpartition(".")
    if not sep or not workload or not namespace:
        raise NodeIdError(f"node id {node_id!r}: third part must be <workload>.<namespace>, got {workload_ns!r}")
    if kind not in ("sidecar", "router"):
        raise NodeIdError(f"node id {node_id!r}: proxy type must be 'sidecar' or 'router', got {kind!r}")
    _check_interception_mode(node_id, metadata or EMPTY_METADATA)
    return ProxyNode(
        id=node_id,
        type=kind,
        ip=ip,
        workload_name=workload,
        namespace=namespace,
        dns_domain=domain,
        cluster=cluster,
        metadata=MappingProxyType(dict(sorted(metadata.items()))) if metadata else EMPTY_METADATA,
        labels=frozen_labels(labels) if labels else EMPTY_LABELS,
        locality=locality,
    )


# The kinds of workload a node id's ``<workload>.<namespace>`` names: a WorkloadEntry, or a Kubernetes pod (Istio's
# sidecar id carries the pod's name: ``sidecar~<pod IP>~<pod name>.<namespace>~<namespace>.svc.<domain>``)
_WORKLOAD_KINDS = ("WorkloadEntry", "Pod")


def resolve_proxy(node: ProxyNode, snapshot: MeshSnapshot) -> Proxy:
    """Find the proxy's workload: a WorkloadEntry or a pod by name in its namespace, else one by address in its
    namespace."""
    workload = None
    for kind in _WORKLOAD_KINDS:
        workload = snapshot.workloads.get(ConfigKey(kind=kind, namespace=node.namespace, name=node.workload_name))
        if workload is not None:
            break
    if workload is None:
        for candidate in snapshot.workloads.values():
            if candidate.meta.key.namespace == node.namespace and candidate.address == node.ip:
                workload = candidate
                break
    if workload is None:
        return Proxy(
            node=node,
            workload=None,
            sidecar=_sidecar_key(snapshot, node.namespace, EMPTY_LABELS),
            # a gateway: its LABELS metadata (``gateway_labels``) and its node's locality
            view=client_view(snapshot, node.namespace, node.labels or EMPTY_LABELS, node.locality),
            envoy_filter_patches=envoy_filter_patches(
                snapshot.envoy_filters, node.namespace, node.labels or EMPTY_LABELS, node.metadata
            ),
        )
    keys = snapshot.source_label_keys
    return Proxy(
        node=node,
        workload=workload,
        instances=snapshot.instances.get(workload.meta.key, ()),
        source_labels=tuple(sorted((k, v) for k, v in workload.labels.items() if k in keys)),
        sidecar=_sidecar_key(snapshot, node.namespace, workload.labels),
        view=client_view(snapshot, node.namespace, workload.labels, workload.locality),
        envoy_filter_patches=envoy_filter_patches(
            snapshot.envoy_filters, node.namespace, workload.labels, node.metadata
        ),
    )


def _sidecar_key(snapshot: MeshSnapshot, namespace: str, labels: Labels) -> ConfigKey | None:
    sidecar = sidecar_for(snapshot.sidecars, namespace, labels)
    return sidecar.meta.key if sidecar is not None else None


def client_view(snapshot: MeshSnapshot, namespace: str, labels: Labels, locality: str) -> ClientView:
    """The proxy's ``ClientView``: only what some rule of the snapshot makes matter."""
    needs = snapshot.locality_needs
    if not needs.locality and not snapshot.destination_rule_index.local.get(namespace):
        return EMPTY_VIEW
    selected = selected_destination_rules(snapshot.destination_rule_index, namespace, labels)
    if not needs.locality:
        return ClientView(selected_rules=selected) if selected else EMPTY_VIEW
    known = topology_labels(labels, locality)
    return ClientView(
        selected_rules=selected,
        locality=locality,
        failover_labels=tuple(sorted((k, v) for k, v in known.items() if k in needs.label_keys)),
    )


def destination_rule_for(
    snapshot: MeshSnapshot, host: str, namespace: str | None = None, view: ClientView = EMPTY_VIEW
) -> DestinationRule | None:
    """The DestinationRule a proxy of ``namespace`` (with ``view``: which workloadSelector rules select it) applies to
    a service host, with Istio's ``exportTo`` visibility (``pilot.model.destination_rules``); an exact host match,
    else the most specific wildcard. Without a namespace: the first rule for the host in any namespace."""
    if namespace is None:
        return lookup_host(snapshot.destination_rules, host)
    service = snapshot.services.get(host)
    return visible_destination_rule(
        snapshot.destination_rule_index,
        host,
        service_namespace=service.namespace if service is not None else namespace,
        proxy_namespace=namespace,
        selected=view.selected_rules,
    )


def virtual_services_for(snapshot: MeshSnapshot, host: str) -> tuple[VirtualService, ...]:
    """The sidecar VirtualServices for a host: exact host match first, else the most specific wildcard."""
    return lookup_host(snapshot.virtual_services, host) or ()


def _registries_changed(previous: MeshSnapshot | None, registered: AggregatedRegistries) -> set[str]:
    """A registry whose version changed counts as a ServiceEntry and WorkloadEntry change (as Istio pushes a
    Kubernetes service change with kind ServiceEntry); one whose endpoints version alone changed as ``Endpoints``
    (Istio's EDS update: only ClusterLoadAssignments are rebuilt)."""
    if previous is None or previous.registry_versions != registered.versions:
        return {"ServiceEntry", "WorkloadEntry", ENDPOINTS_KIND}
    if previous.registry_endpoints_versions != registered.endpoints_versions:
        return {ENDPOINTS_KIND}
    return set()


def _changed_kinds(
    previous: MeshSnapshot | None,
    configs: Mapping[ConfigKey, Resource],
    registered: AggregatedRegistries,
    mesh: MeshSettings,
) -> frozenset[str]:
    """The config kinds that differ from ``previous`` (registries: ``_registries_changed``), and changed mesh
    settings as ``MeshConfig``."""
    registries_changed = _registries_changed(previous, registered)
    if previous is None:
        return frozenset(key.kind for key in configs) | registries_changed | {MESH_CONFIG_KIND}
    changed = registries_changed
    if previous.mesh != mesh:
        changed.add(MESH_CONFIG_KIND)
    for key in previous.configs.keys() | configs.keys():
        old, new = previous.configs.get(key), configs.get(key)
        if old is None or new is None or old.meta.content_hash != new.meta.content_hash:
            changed.add(key.kind)
    return frozenset(changed)


def _derived_kinds(
    changed: frozenset[str],
    previous: MeshSnapshot | None,
    sidecars: SidecarIndex,
    resolved: Mapping[ConfigKey, VirtualService],
) -> frozenset[str]:
    """``changed`` and the kinds derived from it: ``SIDECAR_SCOPE_KIND`` (``scopes_changed``) and
    ``L4_ROUTES_KIND`` (``pilot.model.l4_routes``)."""
    derived = set(changed)
    if scopes_changed(changed, sidecars, previous.sidecars if previous is not None else None):
        derived.add(SIDECAR_SCOPE_KIND)
    before = previous.resolved_virtual_services if previous is not None else None
    if "VirtualService" in changed and l4_routes_changed(before, resolved):
        derived.add(L4_ROUTES_KIND)
    return frozenset(derived)


def _source_label_keys(rules: Iterable[list[VirtualService]]) -> frozenset[str]:
    """The label keys the sidecar VirtualServices' HTTP sourceLabels name (``Proxy.source_labels``)."""
    return frozenset(
        key for vss in rules for vs in vss for http in vs.http for m in http.match for key in m.source_labels
    )


def _virtual_services(
    ordered: Mapping[ConfigKey, Resource], previous: MeshSnapshot | None
) -> dict[ConfigKey, VirtualService]:
    """The VirtualServices with hosts, roots merged with their delegates (``pilot.model.virtual_service_merge``)."""
    before = previous.resolved_virtual_services if previous is not None else None
    return resolve_delegates((r for r in ordered.values() if isinstance(r, VirtualService)), before)


def build_snapshot(
    configs: Mapping[ConfigKey, Resource],
    version: int,
    previous: MeshSnapshot | None = None,
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX,
    *,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    root_namespace: str = DEFAULT_ROOT_NAMESPACE,
    registries: Sequence[ServiceRegistry] = (SERVICE_ENTRIES,),
    mesh: MeshSettings = DEFAULT_MESH_SETTINGS,
) -> MeshSnapshot:
    """Index the accepted config and the service registries' states into a snapshot. Deterministic: iteration is in
    ConfigKey order. ``registries`` (in order; see ``pilot.model.registry`` for who wins a host) default to the
    ServiceEntry/WorkloadEntry registry alone."""
    ordered = sorted_by_key(configs)
    registered = aggregate_registries(registries, ordered)
    rules: dict[str, DestinationRule] = {}
    virtual: dict[str, list[VirtualService]] = defaultdict(list)
    peer_authentications: dict[str, list[PeerAuthentication]] = defaultdict(list)
    authorization_policies: dict[str, list[AuthorizationPolicy]] = defaultdict(list)
    mixer_policies: dict[str, list[MixerPolicy]] = defaultdict(list)
    request_authentications: dict[str, list[RequestAuthentication]] = defaultdict(list)
    telemetries: dict[str, list[Telemetry]] = defaultdict(list)
    gateways = tuple(r for r in ordered.values() if isinstance(r, Gateway))
    # several rules for one host of a namespace merged into one (``pilot.config.destination_rule_merge``)
    destination_rules = merge_destination_rules(
        (r for r in ordered.values() if isinstance(r, DestinationRule)), domain_suffix
    )
    for rule in destination_rules:
        if rule.workload_selector is None:
            rules.setdefault(resolve_host(rule.host, rule.meta.key.namespace, domain_suffix), rule)
    for resource in ordered.values():
        if isinstance(resource, PeerAuthentication):
            peer_authentications[resource.meta.key.namespace].append(resource)
        elif isinstance(resource, AuthorizationPolicy):
            authorization_policies[resource.meta.key.namespace].append(resource)
        elif isinstance(resource, AccessList | RateLimit):
            mixer_policies[resource.meta.key.namespace].append(resource)
        elif isinstance(resource, RequestAuthentication):
            request_authentications[resource.meta.key.namespace].append(resource)
        elif isinstance(resource, Telemetry):
            telemetries[resource.meta.key.namespace].append(resource)
    resolved = _virtual_services(ordered, previous)
    for resource in resolved.values():
        if not resource.gateways or "mesh" in resource.gateways:
            # Sidecars get the rules bound to the reserved "mesh" gateway (the default when none are listed).
            for host in resource.hosts:
                virtual[resolve_host(host, resource.meta.key.namespace, domain_suffix)].append(resource)
    sidecars = index_sidecars((r for r in ordered.values() if isinstance(r, Sidecar)), root_namespace)
    changed = _changed_kinds(previous, ordered, registered, mesh)
    return MeshSnapshot(
        version=version,
        domain_suffix=domain_suffix,
        configs=MappingProxyType(ordered),
        services=registered.services,
        vips=previous.vips
        if previous is not None and previous.services is registered.services
        else allocate_vips(registered.services),
        destination_rules=MappingProxyType(rules),
        destination_rule_index=index_destination_rules(
            destination_rules,
            root_namespace=root_namespace,
            domain_suffix=domain_suffix,
        ),
        virtual_services=MappingProxyType({h: tuple(v) for h, v in sorted(virtual.items())}),
        resolved_virtual_services=MappingProxyType(resolved),
        workloads=registered.workloads,
        instances=registered.instances,
        trust_domain=trust_domain,
        root_namespace=root_namespace,
        mesh=mesh,
        peer_authentications=MappingProxyType({ns: tuple(p) for ns, p in sorted(peer_authentications.items())}),
        authorization_policies=MappingProxyType({ns: tuple(p) for ns, p in sorted(authorization_policies.items())}),
        mixer_policies=MappingProxyType({ns: tuple(p) for ns, p in sorted(mixer_policies.items())}),
        request_authentications=MappingProxyType({ns: tuple(p) for ns, p in sorted(request_authentications.items())}),
        telemetries=MappingProxyType({ns: tuple(t) for ns, t in sorted(telemetries.items())}),
        gateways=gateways,
        gateway_virtual_services=MappingProxyType(
            dict(index_gateway_virtual_services(resolved.values()))  # delegates merged into their roots
        ),
        sidecars=sidecars,
        envoy_filters=index_envoy_filters((r for r in ordered.values() if isinstance(r, EnvoyFilter)), root_namespace),
        proxy_configs=index_proxy_configs(r for r in ordered.values() if isinstance(r, ProxyConfig)),
        changed_kinds=_derived_kinds(changed, previous, sidecars, resolved),
        source_label_keys=_source_label_keys(virtual.values()),
        locality_needs=locality_needs(
            destination_rules,
            endpoint_localities=any(
                e.locality for service in registered.services.values() for es in service.endpoints.values() for e in es
            ),
        ),
        shadowed_services=registered.shadowed,
        registry_versions=registered.versions,
        registry_endpoints_versions=registered.endpoints_versions,
    )
