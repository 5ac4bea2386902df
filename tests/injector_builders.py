"""Pods and AdmissionReviews as the API server sends them to the sidecar injector, the facts it reads, and a small
RFC 6902 ``add`` applier so that a test can look at the pod the API server would create."""

from __future__ import annotations

import copy
from typing import Any

from injector.settings import AdmissionFacts, ControlPlane, InjectorSettings

Obj = dict[str, Any]
IMAGE = "localhost/meshplane:latest"
SETTINGS = InjectorSettings(image=IMAGE, image_pull_policy="Never")
CONTROL_PLANE = ControlPlane(pilot="10.96.0.20:15010", citadel="10.96.0.21:15012", mixer="10.96.0.22:9091")
ENABLED = {"istio-injection": "enabled"}


def facts(namespace_labels: dict[str, str] | None = None, **overrides: Any) -> AdmissionFacts:
    values: Obj = {"namespace_labels": ENABLED if namespace_labels is None else namespace_labels}
    values |= {"control_plane": CONTROL_PLANE} | overrides
    return AdmissionFacts(**values)


def pod(
    *,
    name: str | None = "reviews-v1-5d8f7b9c4-x2x7k",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> Obj:
    metadata: Obj = {
        "namespace": "bookinfo",
        "labels": {"app": "reviews", "version": "v1"} if labels is None else labels,
    }
    if name is not None:
        metadata["name"] = name
    else:
        metadata["generateName"] = "reviews-v1-5d8f7b9c4-"
    if annotations is not None:
        metadata["annotations"] = annotations
    body: Obj = {
        "containers": [{"name": "reviews", "image": "reviews:v1", "ports": [{"containerPort": 9080}]}],
        "serviceAccountName": "bookinfo-reviews",
        "dnsPolicy": "ClusterFirst",
        **spec,
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body}


def review(obj: Obj, *, version: str = "admission.k8s.io/v1", operation: str = "CREATE", kind: str = "Pod") -> Obj:
    request: Obj = {
        "uid": "0df28fbd-5f5f-11e8-bc74-36e6bb280816",
        "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "bookinfo",
        "operation": operation,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "object": obj,
        "dryRun": False,
    }
    return {"apiVersion": version, "kind": "AdmissionReview", "request": request}


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def apply_patch(document: Obj, ops: list[Obj]) -> Obj:
    """``document`` with the JSON Patch ``ops`` applied (``add`` and ``replace``: all the injector writes; a
    ``replace`` of a missing member fails, as RFC 6902 says)."""
    result = copy.deepcopy(document)
    for op in ops:
        assert op["op"] in ("add", "replace"), op
        *parents, last = [_unescape(p) for p in op["path"].split("/")[1:]]
        target: Any = result
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if op["op"] == "replace":
            assert (int(last) < len(target)) if isinstance(target, list) else (last in target), op
            target[int(last) if isinstance(target, list) else last] = op["value"]
        elif isinstance(target, list):
            target.insert(len(target) if last == "-" else int(last), op["value"])
        else:
            target[last] = op["value"]
    return result
