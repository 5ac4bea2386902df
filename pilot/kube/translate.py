"""Kubernetes objects -> the mesh model's services, workloads and instances (Istio's ``serviceregistry/kube``).

- A Service is the host ``<name>.<namespace>.svc.<domain suffix>``, mesh-internal, its ClusterIPs (``clusterIPs``,
  else ``clusterIP``) its VIPs, resolution STATIC; a headless Service (``clusterIP: None``) has no VIP and
  resolution NONE (Istio's Passthrough: connections go to the pod address the app dialled). ExternalName Services
  are left out (``not supported by meshplane yet``), as are ``externalIPs`` (Istio does not route them for sidecars
  either), with a note.
- Ports: number, name, protocol (``protocols.port_protocol``: appProtocol, else Istio's port-name prefixes, else
  TCP; UDP/SCTP ports are left out with a note), the numeric targetPort (a named one is resolved per pod).
- Endpoints: the Service's EndpointSlices (label ``kubernetes.io/service-name``), ready endpoints only (Istio
  sends no unready endpoints by default), each address at the slice port of the same name as the service port
  (the resolved target port, where Istio 1.10+ clients connect too); labels and service account from the Pod of
  the ``targetRef``; locality (``region/zone/subzone``) from the Pod's ``istio-locality`` label (``.`` separated,
  as Istio), else its Node's ``topology.kubernetes.io/region``/``zone`` and ``topology.istio.io/subzone`` labels,
  else the slice's own topology (v1beta1's ``topology`` map; v1's ``zone`` has no region, so it alone gives none).
- Workloads: Pods with a sidecar (label ``security.istio.io/tlsMode: istio``, as injection sets it and Istio's
  auto mTLS reads it), with an IP, not host-network, not finished. Each is a ``WorkloadEntry`` keyed
  ``Pod/<namespace>/<name>`` (its proxy is found by its pod IP in its namespace); an endpoint of such a pod names it,
  so it takes auto mTLS. A pod without a sidecar is only an endpoint (plaintext).
- Instances: each sidecar pod that a Service's selector matches (same namespace) serves every port of it, at the
  targetPort (a named targetPort through the pod's container ports; a pod without that port serves none), readiness
  aside, as Istio's proxy service targets. Services without a selector give no instances.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from meshplane.identity import TLS_MODE_LABEL
from pilot.config.origin import Origin
from pilot.config.types import (
    ConfigKey,
    ConfigMeta,
    Labels,
    Resolution,
    ServicePort,
    WorkloadEntry,
)
from pilot.kube.objects import (
    EXPORT_TO_ANNOTATION,
    KubeEndpoint,
    KubeEndpointSlice,
    KubeNode,
    KubePod,
    KubeService,
    KubeServicePort,
)
from pilot.kube.protocols import port_protocol
from pilot.model.registry import RegistryState
from pilot.model.registry_service_entry import labels_match
from pilot.model.types import DEFAULT_DOMAIN_SUFFIX, Endpoint, Service, ServiceInstance

__all__ = ["LOCALITY_LABEL", "KubeObjects", "Translation", "Translator", "locality", "service_host", "translate"]

LOCALITY_LABEL = "istio-locality"  # Istio's pod label overriding the node's locality: region.zone.subzone
SUBZONE_LABEL = "topology.istio.io/subzone"
_REGION = "topology.kubernetes.io/region"
_ZONE = "topology.kubernetes.io/zone"
_FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeObjects:
    """The objects translated, each mapping in key order."""

    services: Mapping[ConfigKey, KubeService]
    slices: Mapping[ConfigKey, KubeEndpointSlice]
    pods: Mapping[ConfigKey, KubePod]
    nodes: Mapping[str, KubeNode]  # by node name


@dataclass(frozen=True, slots=True, kw_only=True)
class Translation:
    state: RegistryState  # version left "" (the store sets it)
    notes: tuple[str, ...]  # what was left out and why: ``Service ns/name: spec.ports[1]: ...``


def service_host(name: str, namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> str:
    return f"{name}.{namespace}.svc.{domain_suffix}"


def locality(pod: KubePod | None, nodes: Mapping[str, KubeNode], endpoint: KubeEndpoint | None = None) -> str:
    """``region/zone/subzone`` (as far as known; "" without a region): see the module's docstring."""
    if pod is not None and (written := pod.labels.get(LOCALITY_LABEL)):
        return "/".join(part for part in written.split(".") if part)
    node_name = pod.node_name if pod is not None and pod.node_name else endpoint.node_name if endpoint else ""
    node = nodes.get(node_name)
    if node is not None and node.labels.get(_REGION):
        parts = [node.labels.get(_REGION, ""), node.labels.get(_ZONE, ""), node.labels.get(SUBZONE_LABEL, "")]
    elif endpoint is not None:
        parts = [endpoint.region, endpoint.zone]
    else:
        parts = []
    kept: list[str] = []
    for part in parts:
        if not part:
            break
        kept.append(part)
    return "/".join(kept)


def translate(objects: KubeObjects, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> Translation:
    """The objects' registry state (see the module's docstring)."""
    return Translator(domain_suffix).translate(objects)


Ports = list[tuple[ServicePort, KubeServicePort]]


@dataclass(frozen=True, slots=True)
class _TranslatedService:
    inputs: tuple[object, ...]  # every object it was translated from, compared by identity
    service: Service | None  # None: left out
    ports: Ports
    notes: tuple[str, ...]


class Translator:
    """``translate`` that remembers: a Service (or a workload) whose objects are the same objects as last time is
    the same model object as last time, so that a change costs in proportion to what changed (and comparing two
    states finds the unchanged parts by identity). Not thread-safe: one per store, called under its lock."""

    def __init__(self, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> None:
        self._domain_suffix = domain_suffix
        self._workloads: dict[ConfigKey, tuple[KubePod, KubeNode | None, WorkloadEntry]] = {}
        self._services: dict[ConfigKey, _TranslatedService] = {}

    def translate(self, objects: KubeObjects) -> Translation:
        workloads = self._translate_workloads(objects)
        index = _index(workloads.values())
        slices_by_service: dict[tuple[str, str], list[KubeEndpointSlice]] = defaultdict(list)
        for key, endpoint_slice in objects.slices.items():
            if endpoint_slice.service:
                slices_by_service[(key.namespace, endpoint_slice.service)].append(endpoint_slice)
        services: list[Service] = []
        notes: list[str] = []
        instances: dict[ConfigKey, list[ServiceInstance]] = defaultdict(list)
        translated: dict[ConfigKey, _TranslatedService] = {}
        for key, kube_service in objects.services.items():
            slices = slices_by_service.get((key.namespace, key.name), [])
            done = translated[key] = self._translate_service(kube_service, slices, objects, workloads)
            notes.extend(done.notes)
            if done.service is None:
                continue
            services.append(done.service)
            for workload in _selected(kube_service, index):
                pod_key = workload.meta.key
                for port, kube_port in done.ports:
                    target = _target_port(kube_port, objects.pods[pod_key])
                    if target is not None:
                        instances[pod_key].append(
                            ServiceInstance(service=done.service, port=port, target_port=target, workload=workload)
                        )
        self._services = translated
        return Translation(
            state=RegistryState(
                services=tuple(services),
                workloads=tuple(workloads.values()),
                instances=MappingProxyType({k: tuple(v) for k, v in instances.items()}),
            ),
            notes=tuple(notes),
        )

    def _translate_workloads(self, objects: KubeObjects) -> dict[ConfigKey, WorkloadEntry]:
        kept: dict[ConfigKey, tuple[KubePod, KubeNode | None, WorkloadEntry]] = {}
        for key, pod in objects.pods.items():
            if not _has_sidecar(pod):
                continue
            node = objects.nodes.get(pod.node_name)
            cached = self._workloads.get(key)
            if cached is not None and cached[0] is pod and cached[1] is node:
                kept[key] = cached
            else:
                kept[key] = (pod, node, _workload(pod, objects.nodes))
        self._workloads = kept
        return {key: workload for key, (_, _, workload) in kept.items()}

    def _translate_service(
        self,
        kube_service: KubeService,
        slices: list[KubeEndpointSlice],
        objects: KubeObjects,
        workloads: Mapping[ConfigKey, WorkloadEntry],
    ) -> _TranslatedService:
        inputs = _service_inputs(kube_service, slices, objects, workloads)
        cached = self._services.get(kube_service.key)
        if cached is not None and len(cached.inputs) == len(inputs) and all(map(operator.is_, cached.inputs, inputs)):
            return cached
        notes: list[str] = []
        ports = _service_ports(kube_service, notes)
        if ports is None:
            return _TranslatedService(inputs=inputs, service=None, ports=[], notes=tuple(notes))
        key = kube_service.key
        service = Service(
            host=service_host(key.name, key.namespace, self._domain_suffix),
            namespace=key.namespace,
            ports=tuple(port for port, _ in ports),
            resolution=Resolution.NONE if kube_service.headless else Resolution.STATIC,
            mesh_internal=True,
            endpoints=_endpoints(ports, slices, objects, workloads, notes),
            source=key,
            addresses=kube_service.cluster_ips,
            selector=kube_service.selector,
        )
        return _TranslatedService(inputs=inputs, service=service, ports=ports, notes=tuple(notes))


def _service_inputs(
    kube_service: KubeService,
    slices: list[KubeEndpointSlice],
    objects: KubeObjects,
    workloads: Mapping[ConfigKey, WorkloadEntry],
) -> tuple[object, ...]:
    """What a Service's translation reads: the Service, its slices, and per endpoint its Pod, its node and whether
    the pod is a sidecar workload."""
    inputs: list[object] = [kube_service, *slices]
    for endpoint_slice in slices:
        for endpoint in endpoint_slice.endpoints:
            pod_key = ConfigKey(kind="Pod", namespace=endpoint_slice.key.namespace, name=endpoint.pod or "")
            pod = objects.pods.get(pod_key) if endpoint.pod else None
            node_name = pod.node_name if pod is not None and pod.node_name else endpoint.node_name
            inputs += (pod, objects.nodes.get(node_name), pod_key in workloads)
    return tuple(inputs)


def _where(key: ConfigKey) -> str:
    return f"{key.kind} {key.namespace}/{key.name}"


def _service_ports(service: KubeService, notes: list[str]) -> list[tuple[ServicePort, KubeServicePort]] | None:
    """The ports the mesh serves, None when the Service is left out."""
    if service.type == "ExternalName":
        notes.append(f"{_where(service.key)}: spec.type: ExternalName is not supported by meshplane yet (left out)")
        return None
    if service.export_to is not None:
        notes.append(
            f"{_where(service.key)}: metadata.annotations.{EXPORT_TO_ANNOTATION}: not supported by meshplane yet "
            "(the Service is visible to every namespace)"
        )
    if service.internal_traffic_policy == "Local":
        notes.append(
            f"{_where(service.key)}: spec.internalTrafficPolicy: Local is not supported by meshplane yet (every "
            "endpoint of the Service is used, on any node)"
        )
    if service.external_ips:
        notes.append(
            f"{_where(service.key)}: spec.externalIPs: not routed by the mesh (as in Istio's sidecars); only the "
            "ClusterIP is a VIP"
        )
    ports = []
    for i, kube_port in enumerate(service.ports):
        protocol = port_protocol(kube_port.name, kube_port.protocol, kube_port.app_protocol)
        if protocol is None:
            notes.append(
                f"{_where(service.key)}: spec.ports[{i}]: {kube_port.protocol} port {kube_port.port} is not proxied "
                "(Istio's sidecars capture TCP only): left out of the mesh, its traffic goes to the pods directly"
            )
            continue
        target = kube_port.target_port if isinstance(kube_port.target_port, int) else None
        ports.append(
            (ServicePort(number=kube_port.port, name=kube_port.name, protocol=protocol, target_port=target), kube_port)
        )
    return ports


def _endpoints(
    ports: list[tuple[ServicePort, KubeServicePort]],
    slices: Iterable[KubeEndpointSlice],
    objects: KubeObjects,
    workloads: Mapping[ConfigKey, WorkloadEntry],
    notes: list[str],
) -> Mapping[int, tuple[Endpoint, ...]]:
    found: dict[int, dict[tuple[str, int], Endpoint]] = {port.number: {} for port, _ in ports}
    for endpoint_slice in slices:
        if endpoint_slice.address_type == "FQDN":
            notes.append(
                f"{_where(endpoint_slice.key)}: addressType: FQDN is not supported by meshplane yet (left out)"
            )
            continue
        slice_ports = {p.name: p.port for p in endpoint_slice.ports if p.port}
        for endpoint in endpoint_slice.endpoints:
            if not endpoint.ready:
                continue
            pod_key = ConfigKey(kind="Pod", namespace=endpoint_slice.key.namespace, name=endpoint.pod or "")
            pod = objects.pods.get(pod_key) if endpoint.pod else None
            for port, kube_port in ports:
                number = slice_ports.get(kube_port.name)
                if number is None:
                    continue
                for address in endpoint.addresses:
                    found[port.number].setdefault(
                        (address, number),
                        Endpoint(
                            address=address,
                            port=number,
                            labels=pod.labels if pod is not None else MappingProxyType({}),
                            workload=pod_key if pod_key in workloads else None,
                            service_account=pod.service_account if pod is not None else "",
                            locality=locality(pod, objects.nodes, endpoint),
                        ),
                    )
    return MappingProxyType({number: tuple(eps[k] for k in sorted(eps)) for number, eps in sorted(found.items())})


def _has_sidecar(pod: KubePod) -> bool:
    return (
        pod.labels.get(TLS_MODE_LABEL) == "istio"
        and bool(pod.ip)
        and not pod.host_network
        and pod.phase not in _FINISHED_PHASES
    )


def _workload(pod: KubePod, nodes: Mapping[str, KubeNode]) -> WorkloadEntry:
    key = pod.key
    return WorkloadEntry(
        meta=ConfigMeta(key=key, origin=Origin(reference=f"Pod/{key.namespace}/{key.name}"), labels=pod.labels),
        address=pod.ip,
        labels=pod.labels,
        locality=locality(pod, nodes),
        service_account=pod.service_account,
        workload_name=pod.workload_name,
    )


WorkloadIndex = Mapping[tuple[str, str, str], Sequence[WorkloadEntry]]  # (namespace, label, value) -> workloads


def _index(workloads: Iterable[WorkloadEntry]) -> WorkloadIndex:
    """Workloads by (namespace, label, value), in key order, so that a selector looks only at the workloads
    carrying its rarest label (1000 Services x 3000 pods on every event otherwise)."""
    index: dict[tuple[str, str, str], list[WorkloadEntry]] = defaultdict(list)
    for workload in workloads:
        for label, value in workload.labels.items():
            index[(workload.meta.key.namespace, label, value)].append(workload)
    return index


def _selected(service: KubeService, index: WorkloadIndex) -> list[WorkloadEntry]:
    """The sidecar pods a Service's selector picks (a Service without selector, or with ``{}``, picks none)."""
    selector: Labels | None = service.selector
    if not selector:
        return []
    namespace = service.key.namespace
    candidates = min((index.get((namespace, k, v), ()) for k, v in selector.items()), key=len)
    return [w for w in candidates if labels_match(selector, w.labels)]


def _target_port(port: KubeServicePort, pod: KubePod) -> int | None:
    """Where the pod's app listens for the port: the targetPort number, a named container port, else the port."""
    target = port.target_port
    if target is None:
        return port.port
    if isinstance(target, int):
        return target
    if target.isdigit():  # an IntOrString written as a string of digits
        return int(target)
    return pod.named_port(target)
