"""What the injector injects with: its settings (flags, as Istio's ``istio-sidecar-injector`` ConfigMap holds them)
and what the cluster says at the moment a pod is admitted (the namespace's labels, where the control plane and the
cluster's DNS are)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["DEFAULT_PROXY_LIMITS", "DEFAULT_PROXY_REQUESTS", "AdmissionFacts", "ControlPlane", "InjectorSettings"]

# Istio's defaults for the istio-proxy container (values.global.proxy.resources)
DEFAULT_PROXY_REQUESTS: Mapping[str, str] = MappingProxyType({"cpu": "100m", "memory": "128Mi"})
DEFAULT_PROXY_LIMITS: Mapping[str, str] = MappingProxyType({"cpu": "2000m", "memory": "1024Mi"})


@dataclass(frozen=True, slots=True, kw_only=True)
class InjectorSettings:
    """The image both injected containers run and the defaults of the sidecar container."""

    image: str
    image_pull_policy: str = "IfNotPresent"
    domain_suffix: str = "cluster.local"
    revision: str = "default"  # Istio's sidecar.istio.io/status "revision"
    proxy_requests: Mapping[str, str] = field(default_factory=lambda: DEFAULT_PROXY_REQUESTS)
    proxy_limits: Mapping[str, str] = field(default_factory=lambda: DEFAULT_PROXY_LIMITS)


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlPlane:
    """The ``HOST:PORT`` addresses the sidecar dials: a Service's ClusterIP where the injector could read it (so the
    sidecar needs no cluster DNS), else the Service's DNS name."""

    pilot: str
    citadel: str
    mixer: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmissionFacts:
    """What the API server said when the pod was admitted."""

    namespace_labels: Mapping[str, str]
    control_plane: ControlPlane
