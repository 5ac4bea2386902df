"""Status writes on real VirtualService custom resources (``pilot.kube.status``): a rejected object gets Istio-style
``validationMessages``, a ``Reconciled`` condition and ``observedGeneration`` through its status subresource; fixing
it clears them; nothing is rewritten when nothing changed (writes counted, ``resourceVersion`` unchanged); a stale
object (409) and a deleted one (404) are handled; of two Pilot replicas only the lease holder writes.

The Kubernetes config source is another part's: here the objects are listed from the API server and fed the way it
feeds them (``MemorySource.put`` into a store, ``StatusReconciler.observe``)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
import structlog
from kubernetes import client

from e2e.k8s.test_kube_leader import until
from pilot.config.source import ConfigSink
from pilot.config.source_memory import MemorySource
from pilot.config.store import ConfigStore, Rejection
from pilot.kube.status import KubeStatusClient, StatusReconciler
from pilot.kube.status_writes import StatusWrites, status_writes

NAMESPACE_PREFIX = "status"  # kube_namespace's

GROUP, VERSION = "networking.istio.io", "v1beta1"
KINDS = {"DestinationRule": "destinationrules", "VirtualService": "virtualservices"}
SOURCE = "kubernetes"


def destination_rule(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": namespace},
        "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
    }


def virtual_service(namespace: str, subset: str, timeout: str = "5s") -> dict[str, Any]:
    route = {"timeout": timeout, "route": [{"destination": {"host": "reviews", "subset": subset}}]}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": namespace},
        "spec": {"hosts": ["reviews"], "http": [route]},
    }


class Pilot:
    """One Pilot replica's view: a store fed from the API server's objects, and its status reconciler."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.store = ConfigStore(sources=(SOURCE,))
        self.source = MemorySource(ConfigSink(self.store, lambda change: None), name=SOURCE)
        self.reconciler = StatusReconciler(KubeStatusClient(api), self.rejections, batch_delay=0.0)

    def rejections(self) -> tuple[Rejection, ...]:
        return self.store.rejections

    def sync(self) -> None:
        """What a watch would have delivered by now: every object, as the source feeds it."""
        for plural in KINDS.values():
            listed = as_object(self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural))
            for obj in listed["items"]:
                obj.setdefault("apiVersion", f"{GROUP}/{VERSION}")
                self.source.put(obj)
                self.reconciler.observe(obj)


def as_object(answer: object) -> dict[str, Any]:
    assert isinstance(answer, dict), answer
    return answer


def create(api: client.ApiClient, obj: dict[str, Any]) -> dict[str, Any]:
    namespace, plural = obj["metadata"]["namespace"], KINDS[obj["kind"]]
    return as_object(
        client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, obj)
    )


def read(api: client.ApiClient, namespace: str, kind: str = "VirtualService", name: str = "reviews") -> dict[str, Any]:
    return as_object(
        client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, KINDS[kind], name)
    )


def replace_spec(api: client.ApiClient, obj: dict[str, Any]) -> dict[str, Any]:
    current = read(api, obj["metadata"]["namespace"], obj["kind"], obj["metadata"]["name"])
    current["spec"] = obj["spec"]
    namespace, plural, name = obj["metadata"]["namespace"], KINDS[obj["kind"]], obj["metadata"]["name"]
    api_objects = client.CustomObjectsApi(api)
    return as_object(api_objects.replace_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, current))


@pytest.fixture
def reviews(kube_api: client.ApiClient, kube_namespace: str) -> str:
    """The namespace, holding DestinationRule reviews (subset v1) and VirtualService reviews routing to subset v3
    (rejected: IST0101)."""
    create(kube_api, destination_rule(kube_namespace))
    create(kube_api, virtual_service(kube_namespace, subset="v3"))
    return kube_namespace


def leading(pilot: Pilot) -> Pilot:
    """``pilot`` holding the lease, having seen every object."""
    pilot.reconciler.start_writing()
    pilot.sync()
    return pilot


async def write(pilot: Pilot) -> int:
    pilot.sync()
    return await pilot.reconciler.write_once()


async def test_a_rejected_virtual_service_shows_why_in_status_until_it_is_fixed(
    kube_api: client.ApiClient, reviews: str
) -> None:
    pilot = leading(Pilot(kube_api, reviews))
    with structlog.testing.capture_logs() as logs:
        assert await pilot.reconciler.write_once() == 1
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == []

    obj = read(kube_api, reviews)
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"] == 1
    assert status["validationMessages"] == [
        {
            "level": "ERROR",
            "type": {"code": "IST0101", "name": "ReferencedResourceNotFound"},
            "description": "spec.http[0].route[0].destination.subset: subset 'v3' is not defined in DestinationRule "
            f"{reviews}/reviews (its subsets: v1)",
            "documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0101/",
        }
    ]
    [condition] = status["conditions"]
    assert {k: v for k, v in condition.items() if k != "lastTransitionTime"} == {
        "type": "Reconciled",
        "status": "False",
        "reason": "Rejected",
        "message": "meshplane rejected this VirtualService (1 error, see validationMessages); "
        "nothing of it is in force",
        "observedGeneration": 1,
    }

    # an edit wrong in another way: the new generation's reason replaces the old one
    replace_spec(kube_api, virtual_service(reviews, subset="v3", timeout="abc"))
    assert await write(pilot) == 1
    status = read(kube_api, reviews)["status"]
    assert status["observedGeneration"] == 2
    assert [m["type"]["code"] for m in status["validationMessages"]] == ["IST0106"]
    assert status["validationMessages"][0]["description"].startswith("spec.http[0].timeout: invalid duration 'abc'")
    assert status["conditions"][0]["lastTransitionTime"] == condition["lastTransitionTime"]  # still False

    replace_spec(kube_api, virtual_service(reviews, subset="v1"))
    assert await write(pilot) == 1
    fixed = read(kube_api, reviews)
    assert fixed["metadata"]["generation"] == 3
    assert fixed.get("status", {}) == {}
    assert pilot.reconciler.writes == 3


async def test_nothing_is_rewritten_when_nothing_changed(kube_api: client.ApiClient, reviews: str) -> None:
    pilot = leading(Pilot(kube_api, reviews))
    assert await write(pilot) == 1
    version = read(kube_api, reviews)["metadata"]["resourceVersion"]
    for _ in range(3):  # the write's own event, re-reads, a new leader starting over: all see the status is right
        assert await write(pilot) == 0
    pilot.reconciler.start_writing()
    assert await write(pilot) == 0
    other = Pilot(kube_api, reviews)  # another replica taking over
    other.reconciler.start_writing()
    assert await write(other) == 0
    assert (pilot.reconciler.writes, other.reconciler.writes) == (1, 0)
    assert read(kube_api, reviews)["metadata"]["resourceVersion"] == version


async def test_a_stale_object_is_read_again_and_a_deleted_one_forgotten(
    kube_api: client.ApiClient, reviews: str
) -> None:
    pilot = leading(Pilot(kube_api, reviews))
    labelled = copy.deepcopy(read(kube_api, reviews))  # changed behind the reconciler's back: a 409
    labelled["metadata"].setdefault("labels", {})["team"] = "reviews"
    client.CustomObjectsApi(kube_api).replace_namespaced_custom_object(
        GROUP, VERSION, reviews, "virtualservices", "reviews", labelled
    )
    with structlog.testing.capture_logs() as logs:
        assert await pilot.reconciler.write_once() == 1  # tried: 409, read again
        assert pilot.reconciler.writes == 0
        assert await pilot.reconciler.write_once() == 1  # planned on the fresh object: written
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == []
    assert pilot.reconciler.writes == 1
    assert read(kube_api, reviews)["status"]["observedGeneration"] == 1

    replace_spec(kube_api, virtual_service(reviews, subset="v4"))
    pilot.sync()
    client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
        GROUP, VERSION, reviews, "virtualservices", "reviews"
    )
    with structlog.testing.capture_logs() as logs:
        assert await pilot.reconciler.write_once() == 1  # 404: forgotten
        assert await pilot.reconciler.write_once() == 0
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == []
    assert pilot.reconciler.writes == 1


async def test_of_two_pilots_only_the_lease_holder_writes(kube_api: client.ApiClient, reviews: str) -> None:
    pilots = [Pilot(kube_api, reviews) for _ in range(2)]
    replicas: list[StatusWrites] = []
    for index, pilot in enumerate(pilots):
        writes = status_writes(kube_api, pilot.rejections, lease_namespace=reviews, identity=f"pilot-{index}")
        pilot.reconciler = writes.reconciler
        pilot.sync()
        replicas.append(writes)
    tasks = [asyncio.create_task(r.run()) for r in replicas]
    try:
        await until("a status written", lambda: "status" in read(kube_api, reviews), timeout=20)
        [leader] = [i for i, r in enumerate(replicas) if r.elector.is_leader]
        follower = 1 - leader
        for pilot in pilots:
            pilot.sync()
        replicas[leader].stop()
        await asyncio.wait_for(tasks[leader], timeout=10)
        await until("the other replica leading", lambda: replicas[follower].elector.is_leader, timeout=5)
        await asyncio.sleep(1.0)  # its first round: it compares, finds the status right, writes nothing
        assert [r.reconciler.writes for r in replicas] == [1 if i == leader else 0 for i in range(2)]
    finally:
        for replica in replicas:
            replica.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
