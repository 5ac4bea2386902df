"""Kubernetes API objects as the registry reads them: typed views of the plain dicts the API returns (``kubectl get
-o json``, a watch event's ``object``), each read once where it enters (``read_object``).

Only the fields the registry uses are read; a field it needs with the wrong type, or a missing name, makes the
object a ``KubeObjectError`` naming kind, namespace/name and the field path (the API server validates objects, so
this is a guard against a broken proxy or a hand-made fixture, not a validation layer).

EndpointSlices of both API versions read into one view: ``discovery.k8s.io/v1`` (``zone``, ``nodeName``) and
``v1beta1``, the only one Kubernetes 1.20 serves (a ``topology`` map of the node's labels). Either way an endpoint
whose ``conditions.ready`` is absent is ready, as the API documents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from pilot.config.types import ConfigKey, Labels

__all__ = [
    "EXPORT_TO_ANNOTATION",
    "KINDS",
    "SERVICE_NAME_LABEL",
    "Kind",
    "KubeContainerPort",
    "KubeEndpoint",
    "KubeEndpointSlice",
    "KubeNamespace",
    "KubeNode",
    "KubeObject",
    "KubeObjectError",
    "KubePod",
    "KubeService",
    "KubeServicePort",
    "read_object",
]

Kind = Literal["Service", "EndpointSlice", "Pod", "Namespace", "Node"]
KINDS: tuple[Kind, ...] = ("Service", "EndpointSlice", "Pod", "Namespace", "Node")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # an EndpointSlice's Service (set by the slice controller)
EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"
_ZONE = "topology.kubernetes.io/zone"
_REGION = "topology.kubernetes.io/region"
_HOSTNAME = "kubernetes.io/hostname"
_EMPTY: Labels = MappingProxyType({})


class KubeObjectError(ValueError):
    """A Kubernetes object the registry cannot read: ``kind namespace/name: field: problem``."""

    def __init__(self, key: ConfigKey, path: str, problem: str) -> None:
        name = key.name or "<unnamed>"
        super().__init__(f"{key.kind} {f'{key.namespace}/{name}' if key.namespace else name}: {path}: {problem}")
        self.key = key
        self.path = path


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeServicePort:
    name: str
    port: int
    protocol: str  # Kubernetes' L4 protocol: TCP, UDP or SCTP
    app_protocol: str | None
    target_port: int | str | None  # a number, a container port name, or None (the port itself)


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeService:
    key: ConfigKey
    labels: Labels
    selector: Labels | None  # None: no selector (endpoints managed by hand)
    type: str  # ClusterIP, NodePort, LoadBalancer, ExternalName
    cluster_ips: tuple[str, ...]  # () when headless (``clusterIP: None``) or not allocated
    headless: bool
    external_name: str
    external_ips: tuple[str, ...]
    ports: tuple[KubeServicePort, ...]
    internal_traffic_policy: str  # Cluster (the default) or Local
    export_to: str | None  # Istio's networking.istio.io/exportTo annotation, when set


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeEndpoint:
    addresses: tuple[str, ...]
    ready: bool
    pod: str | None  # targetRef name when it is a Pod
    node_name: str
    zone: str
    region: str  # only v1beta1's topology has it


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeEndpointSlice:
    key: ConfigKey
    service: str  # the kubernetes.io/service-name label; "" when not set
    address_type: str  # IPv4, IPv6, FQDN
    ports: tuple[KubeServicePort, ...]  # name, resolved port number (target_port None), protocol, appProtocol
    endpoints: tuple[KubeEndpoint, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeContainerPort:
    name: str
    number: int
    protocol: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KubePod:
    key: ConfigKey
    labels: Labels
    service_account: str
    ip: str  # status.podIP; "" until scheduled and started
    node_name: str
    phase: str
    host_network: bool
    container_ports: tuple[KubeContainerPort, ...]
    deleting: bool  # metadata.deletionTimestamp set
    workload_name: str = ""  # its controller's name as Istio names the workload (``pod_workload_name``)

    def named_port(self, name: str) -> int | None:
        """A container port's number by name (a Service's named targetPort), as the endpoint controller finds it."""
        return next((p.number for p in self.container_ports if p.name == name), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeNamespace:
    key: ConfigKey
    labels: Labels


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeNode:
    key: ConfigKey
    labels: Labels


KubeObject = KubeService | KubeEndpointSlice | KubePod | KubeNamespace | KubeNode


@dataclass(frozen=True, slots=True)
class _Reader:
    key: ConfigKey

    def fail(self, path: str, problem: str) -> KubeObjectError:
        return KubeObjectError(self.key, path, problem)

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(path, f"must be an object, got {type(value).__name__}")
        return value

    def items(self, value: Any, path: str) -> Sequence[Any]:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise self.fail(path, f"must be a list, got {type(value).__name__}")
        return value

    def string(self, value: Any, path: str, default: str = "") -> str:
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(path, f"must be a string, got {type(value).__name__}")
        return value

    def integer(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"must be an integer, got {value!r}")
        return value

    def labels(self, value: Any, path: str) -> Labels:
        mapping = self.mapping(value, path)
        for k, v in mapping.items():
            self.string(v, f"{path}.{k}")
        return MappingProxyType(dict(sorted(mapping.items()))) if mapping else _EMPTY


def read_object(kind: Kind, obj: Mapping[str, Any]) -> KubeObject:
    """The typed view of one API object of ``kind`` (list items carry no ``kind``: the caller knows it)."""
    metadata = obj.get("metadata")
    meta = metadata if isinstance(metadata, Mapping) else {}
    name, namespace = meta.get("name"), meta.get("namespace")
    cluster_scoped = kind in ("Namespace", "Node")
    key = ConfigKey(
        kind=kind,
        namespace="" if cluster_scoped or not isinstance(namespace, str) else namespace,
        name=name if isinstance(name, str) else "",
    )
    reader = _Reader(key)
    if not key.name:
        raise reader.fail("metadata.name", "missing")
    if not cluster_scoped and not key.namespace:
        raise reader.fail("metadata.namespace", "missing")
    labels = reader.labels(meta.get("labels"), "metadata.labels")
    if kind == "Service":
        annotations = reader.labels(meta.get("annotations"), "metadata.annotations")
        spec = reader.mapping(obj.get("spec"), "spec")
        return _read_service(reader, labels, annotations.get(EXPORT_TO_ANNOTATION), spec)
    if kind == "EndpointSlice":
        return _read_slice(reader, labels, obj)
    if kind == "Pod":
        return _read_pod(reader, labels, meta, obj)
    if kind == "Namespace":
        return KubeNamespace(key=key, labels=labels)
    return KubeNode(key=key, labels=labels)


def _read_port(reader: _Reader, port: Any, path: str, *, service: bool) -> KubeServicePort:
    fields = reader.mapping(port, path)
    target: int | str | None = None
    if service and (raw := fields.get("targetPort")) is not None:
        target = raw if isinstance(raw, str) else reader.integer(raw, f"{path}.targetPort")
    app_protocol = fields.get("appProtocol")
    return KubeServicePort(
        name=reader.string(fields.get("name"), f"{path}.name"),
        # a slice port without a number stands for all ports (it carries none to connect to): 0
        port=reader.integer(fields.get("port") if service else fields.get("port") or 0, f"{path}.port"),
        protocol=reader.string(fields.get("protocol"), f"{path}.protocol", "TCP"),
        app_protocol=None if app_protocol is None else reader.string(app_protocol, f"{path}.appProtocol"),
        target_port=target,
    )


def _read_service(reader: _Reader, labels: Labels, export_to: str | None, spec: Mapping[str, Any]) -> KubeService:
    cluster_ip = reader.string(spec.get("clusterIP"), "spec.clusterIP")
    ips = [
        reader.string(ip, f"spec.clusterIPs[{i}]")
        for i, ip in enumerate(reader.items(spec.get("clusterIPs"), "spec.clusterIPs"))
    ]
    if not ips and cluster_ip:
        ips = [cluster_ip]
    headless = cluster_ip == "None"
    selector = spec.get("selector")
    return KubeService(
        key=reader.key,
        labels=labels,
        selector=None if selector is None else reader.labels(selector, "spec.selector"),
        type=reader.string(spec.get("type"), "spec.type", "ClusterIP"),
        cluster_ips=() if headless else tuple(ip for ip in ips if ip and ip != "None"),
        headless=headless,
        external_name=reader.string(spec.get("externalName"), "spec.externalName"),
        external_ips=tuple(
            reader.string(ip, f"spec.externalIPs[{i}]")
            for i, ip in enumerate(reader.items(spec.get("externalIPs"), "spec.externalIPs"))
        ),
        ports=tuple(
            _read_port(reader, p, f"spec.ports[{i}]", service=True)
            for i, p in enumerate(reader.items(spec.get("ports"), "spec.ports"))
        ),
        internal_traffic_policy=reader.string(
            spec.get("internalTrafficPolicy"), "spec.internalTrafficPolicy", "Cluster"
        ),
        export_to=export_to,
    )


def _read_slice(reader: _Reader, labels: Labels, obj: Mapping[str, Any]) -> KubeEndpointSlice:
    endpoints = []
    for i, raw in enumerate(reader.items(obj.get("endpoints"), "endpoints")):
        path = f"endpoints[{i}]"
        endpoint = reader.mapping(raw, path)
        conditions = reader.mapping(endpoint.get("conditions"), f"{path}.conditions")
        ready = conditions.get("ready")
        target = reader.mapping(endpoint.get("targetRef"), f"{path}.targetRef")
        topology = reader.labels(endpoint.get("topology"), f"{path}.topology")  # v1beta1
        endpoints.append(
            KubeEndpoint(
                addresses=tuple(
                    reader.string(a, f"{path}.addresses[{j}]")
                    for j, a in enumerate(reader.items(endpoint.get("addresses"), f"{path}.addresses"))
                ),
                ready=ready is None or ready is True,
                pod=target.get("name") if target.get("kind") == "Pod" and isinstance(target.get("name"), str) else None,
                node_name=reader.string(endpoint.get("nodeName"), f"{path}.nodeName") or topology.get(_HOSTNAME, ""),
                zone=reader.string(endpoint.get("zone"), f"{path}.zone") or topology.get(_ZONE, ""),
                region=topology.get(_REGION, ""),
            )
        )
    return KubeEndpointSlice(
        key=reader.key,
        service=labels.get(SERVICE_NAME_LABEL, ""),
        address_type=reader.string(obj.get("addressType"), "addressType", "IPv4"),
        ports=tuple(
            _read_port(reader, p, f"ports[{i}]", service=False)
            for i, p in enumerate(reader.items(obj.get("ports"), "ports"))
        ),
        endpoints=tuple(endpoints),
    )


_CRON_JOB_NAME = re.compile(r"^(.+)-\d{8,10}$")  # a Job a CronJob made: <cronjob>-<scheduled time in minutes>


def pod_workload_name(reader: _Reader, labels: Labels, meta: Mapping[str, Any]) -> str:
    """The name of the workload a pod belongs to, as Istio derives it (``kube.GetDeployMetaFromPod``): for a pod
    whose name was generated, its controller's name, a ReplicaSet's without the ``-<pod-template-hash>`` suffix (its
    Deployment's), a Job's without a CronJob's ``-<timestamp>``; otherwise the pod's own name. This is
    ``source_workload``/``destination_workload`` in Istio's metrics."""
    name = reader.key.name
    if not reader.string(meta.get("generateName"), "metadata.generateName"):
        return name
    for index, raw in enumerate(reader.items(meta.get("ownerReferences"), "metadata.ownerReferences")):
        owner = reader.mapping(raw, f"metadata.ownerReferences[{index}]")
        if owner.get("controller") is not True:
            continue
        kind = reader.string(owner.get("kind"), f"metadata.ownerReferences[{index}].kind")
        owner_name = reader.string(owner.get("name"), f"metadata.ownerReferences[{index}].name") or name
        template_hash = labels.get("pod-template-hash", "")
        if kind == "ReplicaSet" and template_hash and owner_name.endswith(template_hash):
            return owner_name.removesuffix(template_hash).removesuffix("-") or owner_name
        if kind == "Job" and (cron := _CRON_JOB_NAME.match(owner_name)) is not None:
            return cron.group(1)
        return owner_name
    return name


def _read_pod(reader: _Reader, labels: Labels, meta: Mapping[str, Any], obj: Mapping[str, Any]) -> KubePod:
    spec = reader.mapping(obj.get("spec"), "spec")
    status = reader.mapping(obj.get("status"), "status")
    ports = []
    for i, raw in enumerate(reader.items(spec.get("containers"), "spec.containers")):
        container = reader.mapping(raw, f"spec.containers[{i}]")
        for j, raw_port in enumerate(reader.items(container.get("ports"), f"spec.containers[{i}].ports")):
            path = f"spec.containers[{i}].ports[{j}]"
            port = reader.mapping(raw_port, path)
            ports.append(
                KubeContainerPort(
                    name=reader.string(port.get("name"), f"{path}.name"),
                    number=reader.integer(port.get("containerPort"), f"{path}.containerPort"),
                    protocol=reader.string(port.get("protocol"), f"{path}.protocol", "TCP"),
                )
            )
    account = reader.string(spec.get("serviceAccountName"), "spec.serviceAccountName") or reader.string(
        spec.get("serviceAccount"), "spec.serviceAccount"
    )
    return KubePod(
        key=reader.key,
        labels=labels,
        service_account=account or "default",
        ip=reader.string(status.get("podIP"), "status.podIP"),
        node_name=reader.string(spec.get("nodeName"), "spec.nodeName"),
        phase=reader.string(status.get("phase"), "status.phase"),
        host_network=spec.get("hostNetwork") is True,
        container_ports=tuple(ports),
        deleting=meta.get("deletionTimestamp") is not None,
        workload_name=pod_workload_name(reader, labels, meta),
    )
