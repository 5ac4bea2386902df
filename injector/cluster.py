"""What the injector asks the API server when a pod is admitted (``AdmissionFacts``): the namespace's labels (to
re-check what the webhook's namespaceSelector matched) and the ClusterIPs of the control plane's Services (cached
for ``service_ttl`` seconds; namespaces are read each time: a label just set counts). The client is synchronous:
``facts()`` runs it in a worker thread, never on the event loop.

The sidecar gets ClusterIPs, so it reaches Pilot, Mixer and Citadel without cluster DNS (the local 1.20 cluster
has none); where a Service has no ClusterIP (absent, headless) it gets the Service's DNS name (kind, with cluster
DNS). Citadel's certificate is verified by name (``citadel.istio-system.svc``) either way."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from injector.settings import AdmissionFacts, ControlPlane

__all__ = ["ClusterFacts", "ServiceAddress", "own_image", "parse_service_address"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceAddress:
    """``NAME.NAMESPACE:PORT``: a control-plane Service and the port the sidecar dials."""

    name: str
    namespace: str
    port: int

    def dns_name(self, domain_suffix: str) -> str:
        return f"{self.name}.{self.namespace}.svc.{domain_suffix}:{self.port}"


def parse_service_address(text: str, *, option: str) -> ServiceAddress:
    host, sep, port = text.rpartition(":")
    name, dot, namespace = host.partition(".")
    if not sep or not dot or not name or not namespace or "." in namespace or not port.isdigit():
        raise ValueError(f"{option}: expected NAME.NAMESPACE:PORT (a Service), got {text!r}")
    if not 0 < int(port) < 65536:
        raise ValueError(f"{option}: port must be 1-65535, got {port}")
    return ServiceAddress(name=name, namespace=namespace, port=int(port))


class ClusterFacts:
    """Reads ``AdmissionFacts`` for a namespace from the API server."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        pilot: ServiceAddress,
        citadel: ServiceAddress,
        mixer: ServiceAddress | None,
        domain_suffix: str,
        service_ttl: float = 30.0,
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._pilot, self._citadel, self._mixer = pilot, citadel, mixer
        self._domain_suffix = domain_suffix
        self._ttl = service_ttl
        self._services: dict[tuple[str, str], tuple[float, str | None]] = {}

    async def facts(self, namespace: str) -> AdmissionFacts:
        """Raises ``ApiException`` when the namespace cannot be read."""
        return await asyncio.to_thread(self._facts, namespace)

    def _facts(self, namespace: str) -> AdmissionFacts:
        metadata = self._core.read_namespace(namespace).metadata
        labels = (metadata.labels if metadata is not None else None) or {}
        return AdmissionFacts(
            namespace_labels=dict(labels),
            control_plane=ControlPlane(
                pilot=self._address(self._pilot),
                citadel=self._address(self._citadel),
                mixer=self._address(self._mixer) if self._mixer is not None else None,
            ),
        )

    def _address(self, service: ServiceAddress) -> str:
        cluster_ip = self._cluster_ip(service.namespace, service.name)
        if cluster_ip is None:
            return service.dns_name(self._domain_suffix)
        return f"{cluster_ip}:{service.port}"

    def _cluster_ip(self, namespace: str, name: str) -> str | None:
        now = time.monotonic()
        cached = self._services.get((namespace, name))
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            spec = self._core.read_namespaced_service(name, namespace).spec
            cluster_ip = spec.cluster_ip if spec is not None else None
            found = cluster_ip if cluster_ip and cluster_ip != "None" else None
        except ApiException as exc:
            if exc.status != 404:
                raise
            found = None
        if found is None:
            log.warning("service has no ClusterIP: the sidecar gets its DNS name", service=f"{name}.{namespace}")
        self._services[(namespace, name)] = (now, found)
        return found


def own_image(api: client.ApiClient) -> str:
    """The image of the injector's own container (``POD_NAME``/``POD_NAMESPACE`` from the downward API): the
    meshplane image the install runs, which the injected containers use too."""
    pod_name, namespace = os.environ.get("POD_NAME", ""), os.environ.get("POD_NAMESPACE", "")
    if not pod_name or not namespace:
        raise ValueError("--image IMAGE, or POD_NAME and POD_NAMESPACE (in a pod) to use the injector's own image")
    pod = client.CoreV1Api(api).read_namespaced_pod(pod_name, namespace)
    containers = pod.spec.containers if pod.spec is not None else []
    images = [c.image for c in containers if c.name == "sidecar-injector"] or [c.image for c in containers]
    if not images or not images[0]:
        raise ValueError(f"pod {namespace}/{pod_name} has no container image to inject")
    image: str = images[0]
    return image
