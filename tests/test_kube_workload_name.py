"""A pod's workload name, as Istio derives it from the pod's controller (``kube.GetDeployMetaFromPod``): what
Istio's metrics call ``source_workload``/``destination_workload`` and Mixer reports for Kubernetes pods."""

from __future__ import annotations

from typing import Any

import pytest

from pilot.kube.objects import KubePod, read_object
from tests import kube_builders as kb


def _owned(name: str, *, generated: bool = True, owner: dict[str, Any] | None, hash_label: str = "") -> KubePod:
    obj = kb.pod(name, "10.244.0.30")
    meta = obj["metadata"]
    meta["labels"].pop("pod-template-hash", None)
    if hash_label:
        meta["labels"]["pod-template-hash"] = hash_label
    if not generated:
        meta.pop("generateName", None)
    meta["ownerReferences"] = [] if owner is None else [owner]
    pod = read_object("Pod", obj)
    assert isinstance(pod, KubePod)
    return pod


def _ref(kind: str, name: str, *, controller: bool = True) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "name": name, "controller": controller}


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (
            _owned(
                "reviews-v1-7d8f9c6b5-abcde", owner=_ref("ReplicaSet", "reviews-v1-7d8f9c6b5"), hash_label="7d8f9c6b5"
            ),
            "reviews-v1",
        ),
        # a ReplicaSet whose name does not end in the pod's template hash (made by hand): its own name
        (_owned("web-x1-abcde", owner=_ref("ReplicaSet", "web-x1"), hash_label="7d8f9c6b5"), "web-x1"),
        (_owned("db-0", owner=_ref("StatefulSet", "db")), "db"),
        (_owned("agent-k2x9z", owner=_ref("DaemonSet", "agent")), "agent"),
        (_owned("backup-28012345-q7w2e", owner=_ref("Job", "backup-28012345")), "backup"),  # a CronJob's Job
        (_owned("migrate-q7w2e", owner=_ref("Job", "migrate")), "migrate"),
        (_owned("lonely", generated=False, owner=None), "lonely"),
        # a name not generated: the pod's own, whatever owns it (Istio's rule)
        (_owned("pinned", generated=False, owner=_ref("ReplicaSet", "rs-1")), "pinned"),
        # only the controlling owner counts
        (_owned("orphan-abcde", owner=_ref("ReplicaSet", "rs-1", controller=False)), "orphan-abcde"),
    ],
    ids=[
        "deployment",
        "bare-replicaset",
        "statefulset",
        "daemonset",
        "cronjob",
        "job",
        "bare-pod",
        "named-pod",
        "no-controller",
    ],
)
def test_workload_name(pod: KubePod, expected: str) -> None:
    assert pod.workload_name == expected
