"""Who is at an address: the workloads and service ports of one mesh snapshot, indexed for Mixer's lookups.

Every workload has its own address, the WorkloadEntry's: its pod IP (a sidecar in a pod, traffic captured by
iptables). A connection's real addresses name the workloads: the downstream peer of an inbound connection is the
caller's pod IP (a pod's sidecar connects from it), the local address of an inbound connection (a pod's original
destination, restored by virtualInbound) names the called workload and service port, and on the outbound side the
upstream host is the called pod's IP. This is
how Istio's Mixer resolved ``source.ip`` through its Kubernetes adapter; here the registry is Pilot's own snapshot,
built from the same config directory.

A workload is reached on its service ports and, in a pod, on the app's own target ports too (Istio 1.10+ clients
dial the target port; virtualInbound has chains for both): ``instance_at`` knows both, a service port first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from meshplane.identity import spiffe_id
from pilot.config.types import EMPTY_LABELS, Labels, WorkloadEntry
from pilot.model.types import MeshSnapshot, Service, ServiceInstance

__all__ = ["UNKNOWN", "UNKNOWN_PEER", "PeerLabels", "WorkloadInfo", "WorkloadRegistry", "peer_labels", "principal_of"]

UNKNOWN = "unknown"  # Istio's value for anything not known
_LATEST = "latest"


def principal_of(spiffe: str) -> str:
    """Istio's principal form: the SPIFFE ID without ``spiffe://`` (``cluster.local/ns/default/sa/x``)."""
    return spiffe.removeprefix("spiffe://")


@dataclass(frozen=True, slots=True)
class PeerLabels:
    """A workload's values of Istio's per-side metric labels (``source_*`` or ``destination_*``)."""

    workload: str
    namespace: str
    app: str
    version: str
    canonical_service: str
    canonical_revision: str


UNKNOWN_PEER = PeerLabels(UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, _LATEST)


def peer_labels(name: str, namespace: str, labels: Labels) -> PeerLabels:
    """Istio's conventions: ``app``/``version`` from the workload's labels (else ``unknown``); canonical service and
    revision from ``service.istio.io/canonical-name`` / ``app.kubernetes.io/name`` / ``app`` (else the workload
    name) and ``service.istio.io/canonical-revision`` / ``app.kubernetes.io/version`` / ``version`` (else
    ``latest``)."""
    canonical_service = (
        labels.get("service.istio.io/canonical-name") or labels.get("app.kubernetes.io/name") or labels.get("app")
    )
    canonical_revision = (
        labels.get("service.istio.io/canonical-revision")
        or labels.get("app.kubernetes.io/version")
        or labels.get("version")
    )
    return PeerLabels(
        name,
        namespace,
        labels.get("app") or UNKNOWN,
        labels.get("version") or UNKNOWN,
        canonical_service or name,
        canonical_revision or _LATEST,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadInfo:
    """What telemetry and policy need to know of one workload; ``peer``, its metric labels, is computed once (every
    access-log entry reads it)."""

    name: str
    namespace: str
    address: str
    labels: Labels = field(default_factory=lambda: EMPTY_LABELS)
    service_account: str = ""
    principal: str = ""  # Istio form (no spiffe://), from the service account: what its certificate says
    peer: PeerLabels = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "peer", peer_labels(self.name, self.namespace, self.labels))

    @property
    def app(self) -> str:
        return self.labels.get("app", "")

    @property
    def version(self) -> str:
        return self.labels.get("version", "")


def _service_port(instance: ServiceInstance) -> int:
    return instance.port.number


def _target_port(instance: ServiceInstance) -> int:
    return instance.target_port


class WorkloadRegistry:
    """Read-only indexes over one snapshot; build a new one for each snapshot."""

    def __init__(self, snapshot: MeshSnapshot) -> None:
        self.snapshot = snapshot
        by_address: dict[str, WorkloadInfo] = {}
        by_name: dict[tuple[str, str], WorkloadInfo] = {}
        entries: dict[str, WorkloadEntry] = {}
        for key, workload in snapshot.workloads.items():
            if workload.address in by_address:  # two entries on one address: the first (namespace/name) wins
                continue
            entries[workload.address] = workload
            by_address[workload.address] = by_name[(key.namespace, key.name)] = WorkloadInfo(
                name=workload.workload_name or key.name,  # a pod's: its Deployment's, as Istio's metrics say
                namespace=key.namespace,
                address=workload.address,
                labels=workload.labels,
                service_account=workload.service_account,
                principal=principal_of(spiffe_id(snapshot.trust_domain, key.namespace, workload.service_account)),
            )
        every = [instance for workload_instances in snapshot.instances.values() for instance in workload_instances]
        instances: dict[tuple[str, int], ServiceInstance] = {}
        for port_of in (_service_port, _target_port):  # a target port only where no service port is
            for instance in every:
                instances.setdefault((instance.workload.address, port_of(instance)), instance)
        self._workloads = MappingProxyType(by_address)
        self._by_name = MappingProxyType(by_name)  # by the WorkloadEntry's (the pod's) name: a node id's
        self._entries = MappingProxyType(entries)
        self._instances = MappingProxyType(instances)

    @property
    def version(self) -> int:
        return self.snapshot.version

    def workload_at(self, address: str) -> WorkloadInfo | None:
        """The workload whose address this is (a caller's peer address, a listener's local address)."""
        return self._workloads.get(address)

    def workload_entry_at(self, address: str) -> WorkloadEntry | None:
        return self._entries.get(address)

    def workload_named(self, namespace: str, name: str) -> WorkloadInfo | None:
        """The workload of a sidecar's node id (``<name>.<namespace>``)."""
        return self._by_name.get((namespace, name))

    def instance_at(self, address: str, port: int) -> ServiceInstance | None:
        """The service port a sidecar serves on ``address:port`` (its inbound listener or chain): the port a
        service declares there, else the service port whose target port it is."""
        return self._instances.get((address, port))

    def service(self, host: str) -> Service | None:
        return self.snapshot.services.get(host)
