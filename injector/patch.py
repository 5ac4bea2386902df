"""The injection as one pure function: a Pod of an AdmissionReview in, the RFC 6902 JSON Patch that adds the
sidecar out (or None: this pod gets none), ``InjectionRefused`` when the pod asks for what meshplane cannot do.

Besides the containers and volumes (``injector.containers``) it sets what Istio's injector sets: the
``sidecar.istio.io/status`` annotation (what was added; an injected pod is never injected again), the
``security.istio.io/tlsMode: istio`` label (Pilot's registry sends auto-mTLS only to endpoints with it) and the
``service.istio.io/canonical-name``/``-revision`` labels (Istio's telemetry names), and
``kubectl.kubernetes.io/default-container`` (kubectl exec and logs go to the app, not the sidecar); and it rewrites
the app's probes to the agent's status port (``injector.app_probes``) unless the pod says
``sidecar.istio.io/rewriteAppHTTPProbers: "false"``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from injector.annotations import sidecar_options
from injector.app_probes import rewrite_app_probes
from injector.containers import init_container, injected_volumes, sidecar_container
from injector.names import (
    CANONICAL_NAME_LABEL,
    CANONICAL_REVISION_LABEL,
    INIT_CONTAINER,
    PROXY_CONTAINER,
    ROOT_CERT_VOLUME,
    STATUS_ANNOTATION,
    TOKEN_VOLUME,
    WORK_VOLUME,
)
from injector.policy import injection_decision
from injector.settings import AdmissionFacts, InjectorSettings
from meshplane.identity import TLS_MODE_LABEL

__all__ = ["DEFAULT_CONTAINER_ANNOTATION", "canonical_labels", "injection_patch"]

Obj = dict[str, Any]
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def _pointer(*parts: str) -> str:
    """An RFC 6901 JSON Pointer (``~`` and ``/`` escaped in each part)."""
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def _workload_name(meta: Mapping[str, Any]) -> str:
    """Istio's workload name: a ReplicaSet owner without its pod-template-hash (the Deployment), another controller
    owner, the pod's name, or its generateName without the trailing dash."""
    labels = meta.get("labels") or {}
    for owner in meta.get("ownerReferences") or ():
        if owner.get("controller"):
            name = str(owner.get("name", ""))
            template_hash = labels.get("pod-template-hash")
            if owner.get("kind") == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
                return name.removesuffix(f"-{template_hash}")
            return name
    return str(meta.get("name") or str(meta.get("generateName", "")).rstrip("-"))


def canonical_labels(meta: Mapping[str, Any]) -> dict[str, str]:
    """Istio's canonical service name and revision, from the pod's labels, falling back as Istio does."""
    labels: Mapping[str, str] = meta.get("labels") or {}
    name = labels.get(CANONICAL_NAME_LABEL) or labels.get("app.kubernetes.io/name") or labels.get("app")
    revision = labels.get(CANONICAL_REVISION_LABEL) or labels.get("app.kubernetes.io/version") or labels.get("version")
    return {CANONICAL_NAME_LABEL: name or _workload_name(meta), CANONICAL_REVISION_LABEL: revision or "latest"}


def _status(settings: InjectorSettings) -> str:
    status = {
        "initContainers": [INIT_CONTAINER],
        "containers": [PROXY_CONTAINER],
        "volumes": [WORK_VOLUME, TOKEN_VOLUME, ROOT_CERT_VOLUME],
        "imagePullSecrets": None,
        "revision": settings.revision,
    }
    return json.dumps(status, separators=(",", ":"))


def _add_map_entries(ops: list[Obj], meta: Mapping[str, Any], field: str, entries: Mapping[str, str]) -> None:
    if not meta.get(field):
        ops.append({"op": "add", "path": _pointer("metadata", field), "value": dict(entries)})
        return
    ops += [{"op": "add", "path": _pointer("metadata", field, key), "value": v} for key, v in entries.items()]


def _add_list_items(
    ops: list[Obj], spec: Mapping[str, Any], field: str, items: Sequence[Obj], *, first: bool = False
) -> None:
    if not spec.get(field):
        ops.append({"op": "add", "path": _pointer("spec", field), "value": list(items)})
        return
    for offset, item in enumerate(items):
        ops.append({"op": "add", "path": _pointer("spec", field, str(offset) if first else "-"), "value": item})


def injection_patch(
    pod: Mapping[str, Any], namespace: str, settings: InjectorSettings, facts: AdmissionFacts
) -> tuple[list[Obj] | None, str]:
    """(the JSON Patch, or None when the pod gets no sidecar; why). Raises ``InjectionRefused``."""
    decision = injection_decision(pod, namespace, facts.namespace_labels)
    if not decision.inject:
        return None, decision.reason
    meta: Mapping[str, Any] = pod.get("metadata") or {}
    spec: Mapping[str, Any] = pod.get("spec") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    options = sidecar_options(annotations, settings)
    present: Mapping[str, str] = meta.get("labels") or {}
    wanted = {**canonical_labels(meta), TLS_MODE_LABEL: "istio"}
    labels = {key: value for key, value in wanted.items() if key not in present}
    all_labels = {**present, **labels}
    containers = spec.get("containers") or ()
    probes, app_probers = rewrite_app_probes(containers, options.capture) if options.rewrite_probes else ([], None)
    sidecar = sidecar_container(options, settings, facts.control_plane, labels=all_labels, app_probers=app_probers)
    new_annotations = {STATUS_ANNOTATION: _status(settings)}
    if DEFAULT_CONTAINER_ANNOTATION not in annotations and containers:
        new_annotations[DEFAULT_CONTAINER_ANNOTATION] = str(containers[0].get("name", ""))
    # before the sidecar is added: with holdApplicationUntilProxyStarts it goes first, shifting the indexes
    ops: list[Obj] = [
        {"op": "replace", "path": _pointer("spec", "containers", str(index), field), "value": probe}
        for index, field, probe in probes
    ]
    _add_list_items(ops, spec, "initContainers", [init_container(options, settings)])
    _add_list_items(ops, spec, "containers", [sidecar], first=options.hold_application)
    _add_list_items(ops, spec, "volumes", injected_volumes())
    _add_map_entries(ops, meta, "labels", labels)
    _add_map_entries(ops, meta, "annotations", new_annotations)
    return ops, decision.reason
