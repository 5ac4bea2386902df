"""The Kubernetes service registry (Istio's ``serviceregistry/kube``): Services, EndpointSlices, Pods, Namespaces
and Nodes, read from the plain objects the API returns, translated into the mesh model's services, workloads and
instances, and served through the registry seam (``pilot.model.registry``); and the cluster as a config source.
Layered above the model: config and model never import it.

- ``store``, ``translate``, ``changes``, ``objects``, ``protocols``: the registry, fed plain API objects; no client.
- ``api_resources``: the kinds Pilot watches, on ``meshplane.kube_watch`` (list+watch of one kind on the official
  ``kubernetes`` client, in a thread, shared with Citadel); ``watch_group``: several kinds, consumed on the event
  loop in batches.
- ``registry_feed.RegistryFeed``: the registry's kinds watched into a ``KubernetesRegistry``;
  ``config_source.KubernetesConfigSource``: Istio's and Mixer's CRDs into a config store; ``cluster.read_cluster``:
  both, on one client, as Pilot and Mixer run them; ``sources``: the store's source names (no client imported).

This package's ``__init__`` imports no Kubernetes client: import the watch modules where they are used."""

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
