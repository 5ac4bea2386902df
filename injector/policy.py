"""Which pods get a sidecar: Istio's policy (``injectRequired`` in ``pkg/kube/inject``, with the default policy
``enabled`` and its webhooks' selectors), re-checked here whatever the MutatingWebhookConfiguration let through.

- never a ``hostNetwork`` pod (its capture rules would change the node's routing), never in kube-system or
  kube-public, never a pod already injected (``sidecar.istio.io/status``, or an ``istio-proxy`` container);
- never a pod or namespace labelled ``istio.io/rev`` (revision-based injection is another injector's);
- the pod's ``sidecar.istio.io/inject`` label, else its annotation, decides when set: ``true`` (``y``, ``yes``,
  ``on``, any case) injects, anything else does not;
- unset, the namespace decides: labelled ``istio-injection=enabled`` injects;
- a namespace labelled ``istio-injection`` with any other value (``disabled``) injects nothing, even a pod that
  asks (Istio's object webhook selects only namespaces without that label).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from injector.names import (
    IGNORED_NAMESPACES,
    INIT_CONTAINER,
    INJECT_KEY,
    INJECTION_NAMESPACE_LABEL,
    PROXY_CONTAINER,
    REVISION_LABEL,
    STATUS_ANNOTATION,
)

__all__ = ["InjectionDecision", "injection_decision"]

_TRUE = frozenset({"y", "yes", "true", "on"})  # Istio's (YAML 1.1 booleans)


@dataclass(frozen=True, slots=True)
class InjectionDecision:
    inject: bool
    reason: str  # for the log: why (not)


def _names(spec: Mapping[str, Any], field: str) -> set[str]:
    return {str(c.get("name", "")) for c in spec.get(field) or () if isinstance(c, Mapping)}


def already_injected(pod: Mapping[str, Any]) -> bool:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    return (
        STATUS_ANNOTATION in (meta.get("annotations") or {})
        or PROXY_CONTAINER in _names(spec, "containers")
        or INIT_CONTAINER in _names(spec, "initContainers")
    )


def injection_decision(
    pod: Mapping[str, Any], namespace: str, namespace_labels: Mapping[str, str]
) -> InjectionDecision:
    """Whether ``pod`` (the AdmissionReview's object) in ``namespace`` gets a sidecar, and why."""
    meta = pod.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    if (pod.get("spec") or {}).get("hostNetwork"):
        return InjectionDecision(False, "hostNetwork pod")
    if namespace in IGNORED_NAMESPACES:
        return InjectionDecision(False, f"namespace {namespace} is never injected")
    if already_injected(pod):
        return InjectionDecision(False, "already injected")
    if REVISION_LABEL in labels or REVISION_LABEL in namespace_labels:
        return InjectionDecision(False, f"{REVISION_LABEL} set: revision-based injection is another injector's")
    namespace_value = namespace_labels.get(INJECTION_NAMESPACE_LABEL)
    if namespace_value is not None and namespace_value != "enabled":
        return InjectionDecision(False, f"namespace labelled {INJECTION_NAMESPACE_LABEL}={namespace_value}")
    where, explicit = (
        ("label", labels[INJECT_KEY]) if INJECT_KEY in labels else ("annotation", annotations.get(INJECT_KEY, ""))
    )
    if explicit:
        return InjectionDecision(explicit.lower() in _TRUE, f"{INJECT_KEY}={explicit} ({where})")
    if namespace_value == "enabled":
        return InjectionDecision(True, f"namespace labelled {INJECTION_NAMESPACE_LABEL}=enabled")
    return InjectionDecision(False, f"namespace not labelled {INJECTION_NAMESPACE_LABEL}=enabled, pod did not ask")
