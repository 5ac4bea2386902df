"""The kinds Pilot (and Mixer, through Pilot's config layer) lists and watches, as ``meshplane.kube_kinds.ApiKind``
(group, plural, the versions read, most preferred first; discovery picks the one served).

``REGISTRY_KINDS``: the service registry's Services, EndpointSlices (``discovery.k8s.io/v1`` where served, else
``v1beta1``: Kubernetes 1.20 has only that), Pods, Namespaces and Nodes. ``CONFIG_KINDS``: Istio's kinds in
``networking.istio.io`` ``v1``, ``v1beta1``, ``v1alpha3`` (the newest the CRD serves; ProxyConfig ``v1beta1``,
EnvoyFilter ``v1alpha3``); ``security.istio.io`` ``v1``, ``v1beta1``; ``telemetry.istio.io`` ``v1``, ``v1alpha1``;
Mixer's in ``mixer.meshplane.io/v1``: the ones ``pilot.config.parse`` validates. ``ISTIO_KINDS_NOT_READ`` are
Istio's other kinds, watched only so that each object of them gets the warning the file source gives a skipped
document.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshplane.kube_kinds import ApiKind, core_kind

__all__ = ["CONFIG_KINDS", "ISTIO_KINDS_NOT_READ", "REGISTRY_KINDS"]

_NETWORKING = ("v1", "v1beta1", "v1alpha3")
_SECURITY = ("v1", "v1beta1")


def _istio(
    kind: str, plural: str, group: str = "networking.istio.io", versions: tuple[str, ...] = _NETWORKING
) -> ApiKind:
    return ApiKind(kind=kind, group=group, plural=plural, versions=versions)


REGISTRY_KINDS: Mapping[str, ApiKind] = {
    "Service": core_kind("Service", "services"),
    "EndpointSlice": ApiKind(
        kind="EndpointSlice", group="discovery.k8s.io", plural="endpointslices", versions=("v1", "v1beta1")
    ),
    "Pod": core_kind("Pod", "pods"),
    "Namespace": core_kind("Namespace", "namespaces", namespaced=False),
    "Node": core_kind("Node", "nodes", namespaced=False),
}

CONFIG_KINDS: tuple[ApiKind, ...] = (
    _istio("VirtualService", "virtualservices"),
    _istio("DestinationRule", "destinationrules"),
    _istio("ServiceEntry", "serviceentries"),
    _istio("WorkloadEntry", "workloadentries"),
    _istio("Gateway", "gateways"),
    _istio("Sidecar", "sidecars"),
    _istio("EnvoyFilter", "envoyfilters", versions=("v1alpha3",)),
    _istio("WorkloadGroup", "workloadgroups"),
    _istio("ProxyConfig", "proxyconfigs", versions=("v1beta1",)),  # Istio serves it in v1beta1 only
    _istio("PeerAuthentication", "peerauthentications", "security.istio.io", _SECURITY),
    _istio("AuthorizationPolicy", "authorizationpolicies", "security.istio.io", _SECURITY),
    _istio("RequestAuthentication", "requestauthentications", "security.istio.io", _SECURITY),
    _istio("AccessList", "accesslists", "mixer.meshplane.io", ("v1",)),
    _istio("RateLimit", "ratelimits", "mixer.meshplane.io", ("v1",)),
    _istio("Telemetry", "telemetries", "telemetry.istio.io", ("v1", "v1alpha1")),
)

ISTIO_KINDS_NOT_READ: tuple[ApiKind, ...] = (_istio("WasmPlugin", "wasmplugins", "extensions.istio.io", ("v1alpha1",)),)
