"""A Kubernetes kind as meshplane lists and watches it, and which version of it the server serves (API discovery).

An ``ApiKind`` names a kind by group, plural and the versions meshplane reads, most preferred first (EndpointSlice
``discovery.k8s.io/v1`` where served, else ``v1beta1``, as Kubernetes 1.20 has only that). ``choose_version`` is
the pure choice over what discovery found (``GET /apis/<group>/<version>`` lists each served version's resources):
the first preferred version that serves the kind's plural, None when none does (a CRD not installed).

The kinds each component reads are its own (Pilot's: ``pilot.kube.api_resources``; Citadel's: Namespaces and
ConfigMaps); this module only says what a kind is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ApiKind", "choose_version", "core_kind"]


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


def core_kind(kind: str, plural: str, *, namespaced: bool = True) -> ApiKind:
    """A kind of the core group (``/api/v1``): Service, Pod, Namespace, ConfigMap, ..."""
    return ApiKind(kind=kind, group="", plural=plural, versions=("v1",), namespaced=namespaced)


def choose_version(kind: ApiKind, served: Mapping[str, frozenset[str]]) -> str | None:
    """The version to read ``kind`` in: the first of its preferred versions whose resource list (``served``:
    version -> the plurals it serves) has the kind's plural; None when the server serves none of them."""
    return next((version for version in kind.versions if kind.plural in served.get(version, frozenset())), None)
