"""The ``istio-ca-root-cert`` ConfigMap, as istiod keeps one in every namespace: key ``root-cert.pem`` holds the trust
bundle sidecars verify peers (and Citadel) with, the same bytes as the CA directory's ``trust-bundle.pem`` and SDS's
``ROOTCA``. Injected pods mount it at ``/var/run/secrets/istio/root-cert.pem``.

``RootCertState`` is what the watches saw (namespaces, the bundle each ConfigMap holds; the API's plain objects, as
``meshplane.kube_watch`` delivers them) and which namespaces are stale for a bundle (pure). ``write_root_cert``
makes one namespace's ConfigMap right: create, or update only when its ``root-cert.pem`` or label differs, with the
read ``resourceVersion`` (a conflict re-reads): idempotent, so two Citadel replicas writing the same bundle are
harmless; other keys and labels are kept. Namespaces Istio skips
(``kube-system``, ``kube-public``, ``kube-node-lease``, ``local-path-storage``) and terminating ones get none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kubernetes import client
from kubernetes.client.exceptions import ApiException

__all__ = [
    "IGNORED_NAMESPACES",
    "ROOT_CERT_CONFIGMAP",
    "ROOT_CERT_KEY",
    "ROOT_CERT_LABELS",
    "RootCertState",
    "WriteAction",
    "publishes_to",
    "write_root_cert",
]

ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"
ROOT_CERT_KEY = "root-cert.pem"
ROOT_CERT_LABELS = {"istio.io/config": "true"}  # istiod's label on the ConfigMap
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})
_CONFLICT_RETRIES = 3

WriteAction = Literal["created", "updated", "unchanged", "gone"]
KubeDict = Mapping[str, Any]  # an object as the API sends it (``kubectl get -o json``)


def _field(obj: KubeDict, *path: str) -> Any:
    value: Any = obj
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _text(obj: KubeDict, *path: str) -> str:
    value = _field(obj, *path)
    return value if isinstance(value, str) else ""


def publishes_to(namespace: KubeDict) -> bool:
    """Whether ``namespace`` gets the ConfigMap: not one Istio skips, not terminating."""
    name = _text(namespace, "metadata", "name")
    if not name or _field(namespace, "metadata", "deletionTimestamp") is not None:
        return False
    return name not in IGNORED_NAMESPACES and _text(namespace, "status", "phase") != "Terminating"


def _bundle_in(data: Mapping[str, Any] | None) -> str | None:
    value = (data or {}).get(ROOT_CERT_KEY)
    return value if isinstance(value, str) else None


@dataclass(slots=True)
class RootCertState:
    """What the Namespace and ConfigMap watches saw; mutated on the event loop only."""

    namespaces: set[str] = field(default_factory=set)
    published: dict[str, str | None] = field(default_factory=dict)  # namespace -> its ConfigMap's root-cert.pem
    listed: set[str] = field(default_factory=set)  # which of "namespaces", "configmaps" were listed once

    def namespaces_listed(self, items: Iterable[KubeDict]) -> None:
        self.namespaces = {_text(item, "metadata", "name") for item in items if publishes_to(item)}
        self.listed.add("namespaces")

    def namespace_changed(self, event: str, item: KubeDict) -> None:
        name = _text(item, "metadata", "name")
        if not name:
            return
        if event != "DELETED" and publishes_to(item):
            self.namespaces.add(name)
        else:
            self.namespaces.discard(name)
            self.published.pop(name, None)

    def configmaps_listed(self, items: Iterable[KubeDict]) -> None:
        self.published = {
            namespace: _bundle_in(_field(item, "data"))
            for item in items
            if (namespace := _text(item, "metadata", "namespace"))
        }
        self.listed.add("configmaps")

    def configmap_changed(self, event: str, item: KubeDict) -> None:
        namespace = _text(item, "metadata", "namespace")
        if not namespace:
            return
        if event == "DELETED":
            self.published.pop(namespace, None)
        else:
            self.published[namespace] = _bundle_in(_field(item, "data"))

    def stale(self, bundle: str) -> list[str]:
        """The namespaces whose ConfigMap is missing or holds another bundle, sorted; none before both lists."""
        if len(self.listed) < 2:
            return []
        return sorted(name for name in self.namespaces if self.published.get(name) != bundle)


def _desired(namespace: str, bundle: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=ROOT_CERT_CONFIGMAP, namespace=namespace, labels=dict(ROOT_CERT_LABELS)),
        data={ROOT_CERT_KEY: bundle},
    )


def _up_to_date(configmap: client.V1ConfigMap, bundle: str) -> bool:
    labels = (configmap.metadata.labels if configmap.metadata is not None else None) or {}
    return _bundle_in(configmap.data) == bundle and all(labels.get(k) == v for k, v in ROOT_CERT_LABELS.items())


def _updated(configmap: client.V1ConfigMap, bundle: str) -> client.V1ConfigMap:
    metadata = configmap.metadata or client.V1ObjectMeta(name=ROOT_CERT_CONFIGMAP)
    metadata.labels = {**(metadata.labels or {}), **ROOT_CERT_LABELS}
    configmap.metadata = metadata
    configmap.data = {**(configmap.data or {}), ROOT_CERT_KEY: bundle}
    return configmap


def write_root_cert(core: client.CoreV1Api, namespace: str, bundle: str, *, timeout: float = 10.0) -> WriteAction:
    """Make ``namespace``'s ConfigMap hold ``bundle`` (blocking: run it in a thread). ``gone``: the namespace is
    gone or terminating. ApiException for anything else (403: Citadel may not write ConfigMaps)."""
    for _ in range(_CONFLICT_RETRIES):
        try:
            current = core.read_namespaced_config_map(ROOT_CERT_CONFIGMAP, namespace, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise
            current = None
        try:
            if current is None:
                core.create_namespaced_config_map(namespace, _desired(namespace, bundle), _request_timeout=timeout)
                return "created"
            if _up_to_date(current, bundle):
                return "unchanged"
            core.replace_namespaced_config_map(
                ROOT_CERT_CONFIGMAP, namespace, _updated(current, bundle), _request_timeout=timeout
            )
            return "updated"
        except ApiException as exc:
            if exc.status == 409:  # created or changed by someone else (another replica) since the read
                continue
            if exc.status == 404 or (exc.status == 403 and _terminating(exc)):
                return "gone"
            raise
    raise ApiException(status=409, reason=f"{ROOT_CERT_CONFIGMAP} in {namespace} kept changing while written")


def _terminating(exc: ApiException) -> bool:
    return "because it is being terminated" in str(exc.body or "")
