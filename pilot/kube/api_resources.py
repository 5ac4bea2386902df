"""The API resources meshplane lists and watches, and which version of each the server serves (API discovery).

An ``ApiKind`` names a kind by group, plural and the versions meshplane reads, most preferred first: EndpointSlice
``discovery.k8s.io/v1`` where served, else ``v1beta1`` (Kubernetes 1.20 has only that); Istio's kinds in
``networking.istio.io`` ``v1``, ``v1beta1``, ``v1alpha3`` (the newest the CRD serves); ``security.istio.io`` ``v1``,
``v1beta1``; Mixer's in ``mixer.meshplane.io/v1``. ``choose_version`` is the pure choice over what discovery found
(``GET /apis/<group>/<version>`` lists each served version's resources): the first preferred version that serves
the kind's plural, None when none does (a CRD not installed).

The kinds read as config are the ones ``pilot.config.parse`` validates; ``ISTIO_KINDS_NOT_READ`` are Istio's other
kinds, watched only so that each object of them gets the warning the file source gives a skipped document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "CONFIG_KINDS",
    "ISTIO_KINDS_NOT_READ",
    "REGISTRY_KINDS",
    "ApiKind",
    "choose_version",
]

_NETWORKING = ("v1", "v1beta1", "v1alpha3")
_SECURITY = ("v1", "v1beta1")


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKind:
    kind: str
    group: str  # "" for the core group
    plural: str
    versions: tuple[str, ...]  # the versions meshplane reads, preferred first
    namespaced: bool = True

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def group_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def discovery_path(self, version: str) -> str:
        """Where the resources of one version of the group are listed."""
        return f"/apis/{self.group}/{version}" if self.group else f"/api/{version}"

    def collection_path(self, version: str, namespace: str | None = None) -> str:
        """The path listed and watched: every namespace's objects, or one namespace's."""
        base = self.discovery_path(version)
        if namespace is not None and self.namespaced:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


def _core(kind: str, plural: str, *, namespaced: bool = True) -> ApiKind:
    return ApiKind(kind=kind, group="", plural=plural, versions=("v1",), namespaced=namespaced)


def _istio(
    kind: str, plural: str, group: str = "networking.istio.io", versions: tuple[str, ...] = _NETWORKING
) -> ApiKind:
    return ApiKind(kind=kind, group=group, plural=plural, versions=versions)


REGISTRY_KINDS: Mapping[str, ApiKind] = {
    "Service": _core("Service", "services"),
    "EndpointSlice": ApiKind(
        kind="EndpointSlice", group="discovery.k8s.io", plural="endpointslices", versions=("v1", "v1beta1")
    ),
    "Pod": _core("Pod", "pods"),
    "Namespace": _core("Namespace", "namespaces", namespaced=False),
    "Node": _core("Node", "nodes", namespaced=False),
}

CONFIG_KINDS: tuple[ApiKind, ...] = (
    _istio("VirtualService", "virtualservices"),
    _istio("DestinationRule", "destinationrules"),
    _istio("ServiceEntry", "serviceentries"),
    _istio("WorkloadEntry", "workloadentries"),
    _istio("PeerAuthentication", "peerauthentications", "security.istio.io", _SECURITY),
    _istio("AuthorizationPolicy", "authorizationpolicies", "security.istio.io", _SECURITY),
    _istio("AccessList", "accesslists", "mixer.meshplane.io", ("v1",)),
    _istio("RateLimit", "ratelimits", "mixer.meshplane.io", ("v1",)),
)

ISTIO_KINDS_NOT_READ: tuple[ApiKind, ...] = (
    _istio("Gateway", "gateways"),
    _istio("Sidecar", "sidecars"),
    _istio("EnvoyFilter", "envoyfilters", versions=("v1alpha3",)),
    _istio("WorkloadGroup", "workloadgroups"),
    _istio("ProxyConfig", "proxyconfigs", versions=("v1beta1",)),
    _istio("RequestAuthentication", "requestauthentications", "security.istio.io", _SECURITY),
    _istio("Telemetry", "telemetries", "telemetry.istio.io", ("v1", "v1alpha1")),
    _istio("WasmPlugin", "wasmplugins", "extensions.istio.io", ("v1alpha1",)),
)


def choose_version(kind: ApiKind, served: Mapping[str, frozenset[str]]) -> str | None:
    """The version to read ``kind`` in: the first of its preferred versions whose resource list (``served``:
    version -> the plurals it serves) has the kind's plural; None when the server serves none of them."""
    return next((version for version in kind.versions if kind.plural in served.get(version, frozenset())), None)
