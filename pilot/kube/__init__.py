"""The Kubernetes service registry (Istio's ``serviceregistry/kube``): Services, EndpointSlices, Pods, Namespaces
and Nodes, read from the plain objects the API returns, translated into the mesh model's services, workloads and
instances, and served through the registry seam (``pilot.model.registry``). Nothing here talks to the API: a
watcher feeds ``KubernetesRegistry`` its events. Layered above the model: config and model never import it."""

from pilot.kube.changes import ChangeLevel, RegistryChange, classify_change
from pilot.kube.objects import KINDS, Kind, KubeObjectError, read_object
from pilot.kube.protocols import port_protocol
from pilot.kube.store import EventType, KubernetesRegistry, WatchEvent
from pilot.kube.translate import KubeObjects, Translation, locality, service_host, translate

__all__ = [
    "KINDS",
    "ChangeLevel",
    "EventType",
    "Kind",
    "KubeObjectError",
    "KubeObjects",
    "KubernetesRegistry",
    "RegistryChange",
    "Translation",
    "WatchEvent",
    "classify_change",
    "locality",
    "port_protocol",
    "read_object",
    "service_host",
    "translate",
]
