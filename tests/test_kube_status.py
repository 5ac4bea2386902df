"""``StatusReconciler`` (``pilot.kube.status``) with a recorded status client: only the leader writes, a write is
not repeated while its confirmation is on the way, a verdict about an older version waits, 409 re-reads, 404
forgets, other failures back off. Against the API server: e2e/k8s/test_kube_status.py."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import structlog

from meshplane.kube_rest import KubeResponse, KubeUnavailable
from pilot.config.errors import ConfigError
from pilot.config.origin import object_reference
from pilot.config.store import Rejection
from pilot.config.types import ConfigKey
from pilot.kube.status import StatusReconciler, StatusTarget

KEY = ConfigKey(kind="VirtualService", namespace="bookinfo", name="reviews")


def vs(version: str = "10", generation: int = 1, status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "bookinfo", "resourceVersion": version, "generation": generation},
        "spec": {"hosts": ["reviews"]},
    }
    if status is not None:
        obj["status"] = dict(status)
    return obj


def rejected(version: str = "10", message: str = "subset 'v3' is not defined") -> Rejection:
    origin = object_reference("VirtualService", "bookinfo", "reviews", version)
    problem = ConfigError(origin=origin, key=KEY, path="spec.http[0].route[0].destination.subset", message=message)
    return Rejection(key=KEY, source="kubernetes", unit=str(KEY), origin=origin, errors=(problem,))


class RecordedClient:
    """Answers with queued responses (default 200 with the patched object) and records every call."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, Mapping[str, Any]]] = []
        self.reads: list[str] = []
        self.answers: list[KubeResponse | Exception] = []
        self.current = vs()

    def read(self, target: StatusTarget) -> KubeResponse:
        self.reads.append(target.path)
        return KubeResponse(200, self.current)

    def patch_status(self, target: StatusTarget, status: Mapping[str, Any]) -> KubeResponse:
        self.patches.append((target.resource_version, status))
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return KubeResponse(200, {})


class Pilot:
    def __init__(self) -> None:
        self.client = RecordedClient()
        self.rejections: tuple[Rejection, ...] = (rejected(),)
        self.now = 100.0
        self.reconciler = StatusReconciler(self.client, lambda: self.rejections, clock=lambda: self.now)


@pytest.fixture
def pilot() -> Pilot:
    return Pilot()


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        (vs(), "/apis/networking.istio.io/v1beta1/namespaces/bookinfo/virtualservices/reviews"),
        ({**vs(), "kind": "AuthorizationPolicy", "apiVersion": "security.istio.io/v1"}, "/apis/security.istio.io/v1/"
         "namespaces/bookinfo/authorizationpolicies/reviews"),
        ({**vs(), "kind": "Service", "apiVersion": "v1"}, None),
        ({**vs(), "kind": "Gateway"}, None),
        ({**vs(), "metadata": {"name": "reviews"}}, None),
    ],
    ids=["virtual-service", "authorization-policy", "core-kind", "kind-not-read", "no-namespace"],
)  # fmt: skip
def test_status_targets_are_the_kinds_meshplane_reads(obj: dict[str, Any], path: str | None) -> None:
    target = StatusTarget.from_object(obj)
    assert (target.path if target else None) == path


async def test_only_the_leader_writes(pilot: Pilot) -> None:
    pilot.reconciler.observe(vs())
    assert await pilot.reconciler.write_once() == 0
    pilot.reconciler.start_writing()
    assert await pilot.reconciler.write_once() == 1
    [(version, patch)] = pilot.client.patches
    assert version == "10"
    assert patch["observedGeneration"] == 1
    assert [m["type"]["code"] for m in patch["validationMessages"]] == ["IST0101"]
    pilot.reconciler.stop_writing()
    pilot.rejections = ()
    assert await pilot.reconciler.write_once() == 0


async def test_a_write_is_not_repeated_while_its_event_is_on_the_way(pilot: Pilot) -> None:
    reconciler = pilot.reconciler
    reconciler.observe(vs())
    reconciler.start_writing()
    assert await reconciler.write_once() == 1
    assert await reconciler.write_once() == 0  # the object still shows the old status: the write is remembered
    reconciler.observe(vs(version="11", status=pilot.client.patches[0][1]))  # its event: confirmed
    assert await reconciler.write_once() == 0
    reconciler.observe(vs(version="12", status={}))  # someone removed it: written again
    assert await reconciler.write_once() == 1
    assert reconciler.writes == 2


async def test_a_verdict_about_an_older_version_waits_for_the_store(pilot: Pilot) -> None:
    reconciler = pilot.reconciler
    reconciler.observe(vs(version="10", generation=1))
    reconciler.observe(vs(version="20", generation=2))  # an edit the store has not validated yet
    reconciler.start_writing()
    assert await reconciler.write_once() == 0
    pilot.rejections = (rejected(version="20"),)
    assert await reconciler.write_once() == 1
    assert pilot.client.patches[0][1]["observedGeneration"] == 2


async def test_a_verdict_on_a_status_only_change_still_names_its_generation(pilot: Pilot) -> None:
    reconciler = pilot.reconciler
    reconciler.observe(vs(version="10", generation=1))
    reconciler.observe(vs(version="11", generation=1, status={"conditions": []}))  # status changed, spec not
    reconciler.start_writing()
    assert await reconciler.write_once() == 1
    [(version, patch)] = pilot.client.patches
    assert (version, patch["observedGeneration"]) == ("11", 1)


async def test_running_it_writes_after_observed_changes_and_new_rejections() -> None:
    client = RecordedClient()
    rejections: list[tuple[Rejection, ...]] = [(rejected(),)]
    reconciler = StatusReconciler(client, lambda: rejections[0], batch_delay=0.01, poll_interval=0.02)
    task = asyncio.create_task(reconciler.run())
    try:
        reconciler.observe(vs())
        reconciler.observe(vs(version="11", status={}))  # a burst: planned once
        reconciler.start_writing()
        await until(lambda: reconciler.writes == 1)
        assert [version for version, _ in client.patches] == ["11"]
        reconciler.observe(vs(version="12", status=client.patches[0][1]))
        await asyncio.sleep(0.1)
        assert reconciler.writes == 1
        rejections[0] = ()  # no call: the store's new rejections are polled
        await until(lambda: reconciler.writes == 2)
        assert client.patches[1][1]["validationMessages"] is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until(probe: Callable[[], bool]) -> None:
    for _ in range(200):
        if probe():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


async def test_a_conflict_reads_the_object_again_and_a_missing_one_is_forgotten(pilot: Pilot) -> None:
    reconciler = pilot.reconciler
    reconciler.observe(vs())
    reconciler.start_writing()
    pilot.client.current = vs(version="15")
    pilot.client.answers = [KubeResponse(409, {"message": "the object has been modified"})]
    with structlog.testing.capture_logs() as logs:
        assert await reconciler.write_once() == 1
        assert pilot.client.reads == ["/apis/networking.istio.io/v1beta1/namespaces/bookinfo/virtualservices/reviews"]
        assert await reconciler.write_once() == 1
        assert [version for version, _ in pilot.client.patches] == ["10", "15"]
        reconciler.observe(vs(version="16", generation=2))
        pilot.rejections = (rejected(version="16", message="another reason"),)
        pilot.client.answers = [KubeResponse(404, {})]
        assert await reconciler.write_once() == 1
        assert await reconciler.write_once() == 0  # forgotten
    assert [e for e in logs if e["log_level"] in ("warning", "error")] == []
    assert reconciler.writes == 1


async def test_failures_are_retried_with_backoff_and_logged_once(pilot: Pilot) -> None:
    reconciler = pilot.reconciler
    reconciler.observe(vs())
    reconciler.start_writing()
    pilot.client.answers = [KubeUnavailable("connection refused"), KubeResponse(500, {"message": "etcd timeout"})]
    with structlog.testing.capture_logs() as logs:
        assert await reconciler.write_once() == 1
        assert await reconciler.write_once() == 0  # backing off
        pilot.now += 0.5
        assert await reconciler.write_once() == 1  # 500
        pilot.now += 0.5
        assert await reconciler.write_once() == 0  # backoff doubled: 1 s
        pilot.now += 0.5
        assert await reconciler.write_once() == 1
    assert reconciler.writes == 1
    assert [(e["event"], e["error"]) for e in logs if e["log_level"] == "warning"] == [
        ("status_write_failed", "connection refused"),
        ("status_write_failed", "500: etcd timeout"),
    ]


async def test_a_fixed_object_is_cleared_and_a_deleted_one_not_written(pilot: Pilot) -> None:
    reconciler = pilot.reconciler
    reconciler.observe(vs())
    reconciler.start_writing()
    assert await reconciler.write_once() == 1
    reconciler.observe(vs(version="11", status=copy.deepcopy(pilot.client.patches[0][1])))
    pilot.rejections = ()
    assert await reconciler.write_once() == 1
    assert pilot.client.patches[1] == (
        "11",
        {"validationMessages": None, "conditions": None, "observedGeneration": None},
    )
    pilot.rejections = (rejected(version="11"),)
    reconciler.forget(KEY)
    assert await reconciler.write_once() == 0
