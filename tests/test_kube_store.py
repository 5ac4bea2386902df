"""The Kubernetes registry's store: watch events and relists in, the registry state and what changed out."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from pilot.config.types import ConfigKey
from pilot.kube import ChangeLevel, KubernetesRegistry, RegistryChange, WatchEvent
from pilot.kube.objects import Kind
from tests import kube_builders as kb

REVIEWS_HOST = "reviews.bookinfo.svc.cluster.local"
V1 = "reviews-v1-7d8f9c6b5-abcde"
V1_BIS = "reviews-v1-7d8f9c6b5-qrstu"
V1_KEY = ConfigKey(kind="Pod", namespace="bookinfo", name=V1)
V1_BIS_KEY = ConfigKey(kind="Pod", namespace="bookinfo", name=V1_BIS)

Obj = dict[str, Any]


def added(kind: Kind, obj: Obj) -> WatchEvent:
    return WatchEvent(type="ADDED", kind=kind, object=obj)


def modified(kind: Kind, obj: Obj) -> WatchEvent:
    return WatchEvent(type="MODIFIED", kind=kind, object=obj)


def deleted(kind: Kind, obj: Obj) -> WatchEvent:
    return WatchEvent(type="DELETED", kind=kind, object=obj)


def slice_of(*endpoints: Obj) -> Obj:
    return kb.endpoint_slice(endpoints=list(endpoints))


def running(service: Obj | None = None) -> KubernetesRegistry:
    """reviews with one ready sidecar pod."""
    kube = KubernetesRegistry()
    kube.apply_all(
        [
            added("Node", kb.node()),
            added("Pod", kb.pod(V1, "10.244.0.12")),
            added("Service", service or kb.service()),
            added("EndpointSlice", slice_of(kb.endpoint("10.244.0.12", V1))),
        ]
    )
    return kube


def endpoints(kube: KubernetesRegistry, host: str = REVIEWS_HOST) -> list[tuple[str, int]]:
    service = next(s for s in kube.state({}).services if s.host == host)
    return [(e.address, e.port) for e in service.endpoints[9080]]


def with_label(obj: Obj, key: str, value: str) -> Obj:
    changed = copy.deepcopy(obj)
    changed["metadata"]["labels"][key] = value
    return changed


def unready_pod(name: str, ip: str) -> Obj:
    return kb.pod(name, ip, ready=False)


ENDPOINTS_ONLY = RegistryChange(level=ChangeLevel.ENDPOINTS, hosts=frozenset({REVIEWS_HOST}))
SERVICES = RegistryChange(level=ChangeLevel.SERVICES)
NONE = RegistryChange(level=ChangeLevel.NONE)

# (event after ``running()``, the change, reviews' endpoints after it)
SEQUENCES: list[tuple[str, Callable[[], list[WatchEvent]], RegistryChange, list[tuple[str, int]]]] = [
    (
        "one-of-two-endpoints-unready",
        lambda: [
            added("Pod", kb.pod(V1_BIS, "10.244.0.13")),
            modified("EndpointSlice", slice_of(kb.endpoint("10.244.0.12", V1), kb.endpoint("10.244.0.13", V1_BIS))),
            modified("Pod", unready_pod(V1, "10.244.0.12")),
            modified(
                "EndpointSlice",
                slice_of(kb.endpoint("10.244.0.12", V1, ready=False), kb.endpoint("10.244.0.13", V1_BIS)),
            ),
        ],
        RegistryChange(level=ChangeLevel.ENDPOINTS, hosts=frozenset({REVIEWS_HOST}), workloads=frozenset({V1_BIS_KEY})),
        [("10.244.0.13", 9080)],
    ),
    (
        "last-endpoint-unready",  # no endpoint left: the service's identities (SANs) go: full, as Istio
        lambda: [modified("EndpointSlice", slice_of(kb.endpoint("10.244.0.12", V1, ready=False)))],
        SERVICES,
        [],
    ),
    (
        "pod-readiness-alone",  # the slice change that follows moves the endpoint
        lambda: [modified("Pod", unready_pod(V1, "10.244.0.12"))],
        NONE,
        [("10.244.0.12", 9080)],
    ),
    (
        "scale-up-same-replica-set",  # the new pod's own proxy needs its config: listed
        lambda: [
            added("Pod", kb.pod(V1_BIS, "10.244.0.13")),
            modified("EndpointSlice", slice_of(kb.endpoint("10.244.0.12", V1), kb.endpoint("10.244.0.13", V1_BIS))),
        ],
        RegistryChange(level=ChangeLevel.ENDPOINTS, hosts=frozenset({REVIEWS_HOST}), workloads=frozenset({V1_BIS_KEY})),
        [("10.244.0.12", 9080), ("10.244.0.13", 9080)],
    ),
    (
        "pod-created-not-yet-endpoint",
        lambda: [added("Pod", kb.pod(V1_BIS, "10.244.0.13"))],
        RegistryChange(level=ChangeLevel.ENDPOINTS, workloads=frozenset({V1_BIS_KEY})),
        [("10.244.0.12", 9080)],
    ),
    (
        "new-endpoint-of-another-service-account",  # the clusters' SAN checks change: full
        lambda: [
            added("Pod", kb.pod(V1_BIS, "10.244.0.13", service_account="other")),
            modified("EndpointSlice", slice_of(kb.endpoint("10.244.0.12", V1), kb.endpoint("10.244.0.13", V1_BIS))),
        ],
        SERVICES,
        [("10.244.0.12", 9080), ("10.244.0.13", 9080)],
    ),
    (
        "new-endpoint-of-another-version",  # subsets by labels: a subset's members and SANs may change: full
        lambda: [
            added("Pod", kb.pod(V1_BIS, "10.244.0.13", labels={"app": "reviews", "version": "v2"})),
            modified("EndpointSlice", slice_of(kb.endpoint("10.244.0.12", V1), kb.endpoint("10.244.0.13", V1_BIS))),
        ],
        SERVICES,
        [("10.244.0.12", 9080), ("10.244.0.13", 9080)],
    ),
    (
        "pod-labels-changed",
        lambda: [modified("Pod", with_label(kb.pod(V1, "10.244.0.12"), "version", "v9"))],
        SERVICES,
        [("10.244.0.12", 9080)],
    ),
    (
        "service-port-added",
        lambda: [
            modified(
                "Service",
                kb.service(
                    ports=[
                        {"name": "http", "port": 9080, "protocol": "TCP", "targetPort": 9080},
                        {"name": "grpc", "port": 9090, "protocol": "TCP", "targetPort": 9090},
                    ]
                ),
            )
        ],
        SERVICES,
        [("10.244.0.12", 9080)],
    ),
    (
        "node-zone-changed",  # locality is in the workload too: full
        lambda: [modified("Node", kb.node(zone="eu-west-1b"))],
        SERVICES,
        [("10.244.0.12", 9080)],
    ),
    (
        "namespace-labels",
        lambda: [added("Namespace", kb.namespace(labels={"istio-injection": "enabled"}))],
        NONE,
        [("10.244.0.12", 9080)],
    ),
    (
        "slice-deleted",
        lambda: [deleted("EndpointSlice", slice_of())],
        SERVICES,
        [],
    ),
]


@pytest.mark.parametrize(("events", "change", "after"), [s[1:] for s in SEQUENCES], ids=[s[0] for s in SEQUENCES])
def test_change_after_events(
    events: Callable[[], list[WatchEvent]], change: RegistryChange, after: list[tuple[str, int]]
) -> None:
    kube = running()
    assert kube.apply_all(events()) == change
    assert endpoints(kube) == after


def test_headless_service_endpoint_changes_are_full_pushes() -> None:
    kube = running(kb.service(cluster_ip="None"))
    change = kube.apply(modified("EndpointSlice", slice_of(kb.endpoint("10.244.0.12", V1, ready=False))))
    assert change == SERVICES


def versions(kube: KubernetesRegistry) -> tuple[str, str]:
    state = kube.state({})
    return (state.version, state.endpoints_version)


def test_versions_follow_the_change_level() -> None:
    """``version`` counts full pushes, ``endpoints_version`` EDS-only ones; a sidecar pod that appears or goes is a
    full push (its proxy resolves to a workload anew)."""
    kube = KubernetesRegistry()
    assert versions(kube) == ("0", "0")
    assert kube.apply(added("Service", kb.service())).level is ChangeLevel.SERVICES
    assert versions(kube) == ("1", "0")
    kube.apply(added("EndpointSlice", slice_of(kb.endpoint("10.0.0.1", "plain-pod"))))
    assert versions(kube) == ("1", "1")
    assert kube.apply(modified("Pod", unready_pod("no-such-service-pod", "10.0.0.2"))) == RegistryChange(
        level=ChangeLevel.ENDPOINTS,
        workloads=frozenset({ConfigKey(kind="Pod", namespace="bookinfo", name="no-such-service-pod")}),
    )
    assert versions(kube) == ("2", "1")
    assert kube.apply(added("Namespace", kb.namespace())) == NONE
    assert versions(kube) == ("2", "1")
    assert kube.version == "2"


def test_deleting_the_service_removes_its_host_and_instances() -> None:
    kube = running()
    assert kube.apply(deleted("Service", kb.service())) == SERVICES
    state = kube.state({})
    assert (state.services, state.instances, [w.meta.key for w in state.workloads]) == ((), {}, [V1_KEY])


def test_relist_drops_what_is_gone() -> None:
    kube = running()
    kube.apply(added("Pod", kb.pod(V1_BIS, "10.244.0.13")))
    change = kube.replace("Pod", [kb.pod(V1_BIS, "10.244.0.13")])  # V1 was deleted while the watch was down
    assert change == SERVICES  # V1's instances went with it... and it is still an endpoint until its slice says
    assert [w.meta.key for w in kube.state({}).workloads] == [V1_BIS_KEY]


def test_unreadable_object_keeps_the_last_good_version() -> None:
    kube = running()
    broken = kb.service()
    broken["spec"]["ports"][0]["port"] = "9080"
    assert kube.apply(modified("Service", broken)) == NONE
    assert kube.problems == {
        ConfigKey(kind="Service", namespace="bookinfo", name="reviews"): (
            "Service bookinfo/reviews: spec.ports[0].port: must be an integer, got '9080'"
        )
    }
    assert [s.host for s in kube.state({}).services] == [REVIEWS_HOST]
    kube.apply(modified("Service", kb.service()))
    assert kube.problems == {}


def test_deleting_an_unreadable_object_needs_only_its_name() -> None:
    kube = running()
    broken = kb.service()
    broken["spec"] = "garbage"
    assert kube.apply(deleted("Service", broken)) == SERVICES
    assert kube.state({}).services == ()


@pytest.mark.parametrize(
    ("obj", "kind", "message"),
    [
        ({"metadata": {"namespace": "bookinfo"}}, "Service", "Service bookinfo/<unnamed>: metadata.name: missing"),
        ({"metadata": {"name": "x"}}, "Pod", "Pod x: metadata.namespace: missing"),
        (
            {**kb.pod(V1, "10.0.0.1"), "spec": {"containers": {"name": "app"}}},
            "Pod",
            f"Pod bookinfo/{V1}: spec.containers: must be a list, got dict",
        ),
        (
            {**kb.endpoint_slice(), "endpoints": [{"addresses": [1]}]},
            "EndpointSlice",
            "EndpointSlice bookinfo/reviews-x7k2p: endpoints[0].addresses[0]: must be a string, got int",
        ),
    ],
    ids=["no-name", "no-namespace", "containers-not-a-list", "address-not-a-string"],
)
def test_problem_messages(obj: Obj, kind: Kind, message: str) -> None:
    kube = KubernetesRegistry()
    kube.apply(added(kind, obj))
    assert list(kube.problems.values()) == [message]


def test_namespace_labels() -> None:
    kube = KubernetesRegistry()
    kube.apply(added("Namespace", kb.namespace(labels={"istio-injection": "enabled"})))
    assert dict(kube.namespace_labels("bookinfo")) == {
        "istio-injection": "enabled",
        "kubernetes.io/metadata.name": "bookinfo",
    }
    assert dict(kube.namespace_labels("unknown")) == {}
    kube.apply(deleted("Namespace", kb.namespace()))
    assert dict(kube.namespace_labels("bookinfo")) == {}


def test_state_is_an_unchanging_snapshot() -> None:
    kube = running()
    before = kube.state({})
    kube.apply(modified("EndpointSlice", slice_of()))
    assert [e.address for e in before.services[0].endpoints[9080]] == ["10.244.0.12"]
    assert kube.state({}) is not before


def test_unchanged_services_and_workloads_are_the_same_objects() -> None:
    kube = running()
    kube.apply(added("Service", kb.service("ratings", ports=[{"name": "http", "port": 9080, "protocol": "TCP"}])))
    before = kube.state({})
    kube.apply(added("EndpointSlice", kb.endpoint_slice("ratings", [kb.endpoint("10.244.0.20", "ratings-1")])))
    after = kube.state({})
    (ratings_before, reviews_before), (ratings_after, reviews_after) = before.services, after.services
    assert (reviews_after is reviews_before, ratings_after is ratings_before) == (True, False)
    assert after.workloads[0] is before.workloads[0]


def test_a_pod_change_reaches_the_endpoints_of_a_remembered_service() -> None:
    kube = running()
    kube.apply(modified("Pod", with_label(kb.pod(V1, "10.244.0.12"), "version", "v9")))
    (endpoint,) = kube.state({}).services[0].endpoints[9080]
    assert endpoint.labels["version"] == "v9"
    kube.apply(modified("Node", kb.node(zone="eu-west-1c")))
    (endpoint,) = kube.state({}).services[0].endpoints[9080]
    assert endpoint.locality == "eu-west-1/eu-west-1c"
    kube.apply(modified("Pod", kb.pod(V1, "10.244.0.12", sidecar=False)))
    (endpoint,) = kube.state({}).services[0].endpoints[9080]
    assert endpoint.workload is None
