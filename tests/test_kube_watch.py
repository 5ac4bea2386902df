"""The pure parts of the Kubernetes list+watch (``meshplane.kube_watch_events``, ``meshplane.kube_kinds``) and what its
consumers make of deliveries: the config source's units (relist as a replace, events, duplicates with files) and
the registry feed's batches. The watch itself against a real API server: ``e2e/k8s/test_kube_watch.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from meshplane.kube_kinds import ApiKind, choose_version
from meshplane.kube_watch import Changed, Delivery, Listed
from meshplane.kube_watch_events import (
    Backoff,
    Bookmark,
    Event,
    Expired,
    Failed,
    ListDiff,
    StreamItem,
    identity,
    list_diff,
    read_event,
)
from pilot.config import FILES, ConfigSink, ConfigStore, StoreChange, parse_config_text
from pilot.config.types import ConfigKey
from pilot.kube import ChangeLevel, KubernetesRegistry
from pilot.kube.api_resources import CONFIG_KINDS, REGISTRY_KINDS
from pilot.kube.config_source import KubernetesConfigSource
from pilot.kube.registry_feed import apply_deliveries
from pilot.kube.sources import KUBERNETES, store_sources
from tests import kube_builders as kb
from tests.source_builders import config_object

Obj = dict[str, Any]
KINDS = {kind.kind: kind for kind in CONFIG_KINDS}
VIRTUAL_SERVICE = KINDS["VirtualService"]
REVIEWS_VS = ConfigKey(kind="VirtualService", namespace="default", name="reviews")


def cm(name: str, version: str, namespace: str = "default") -> Obj:
    return {"kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace, "resourceVersion": version}}


# ------------------------------------------------------------------------------------------------ stream lines


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ({"type": "ADDED", "object": cm("a", "5")}, Event("ADDED", cm("a", "5"))),
        ({"type": "MODIFIED", "object": cm("a", "6")}, Event("MODIFIED", cm("a", "6"))),
        ({"type": "DELETED", "object": cm("a", "7")}, Event("DELETED", cm("a", "7"))),
        (
            {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "912"}}},
            Bookmark("912"),
        ),
        (
            {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}},
            Expired("Expired (410): too old"),
        ),
        (
            {"type": "ERROR", "object": {"kind": "Status", "code": 500, "reason": "InternalError", "message": "etcd"}},
            Failed("InternalError (500): etcd"),
        ),
        ({"type": "SURPRISE", "object": {}}, Failed("unknown watch event type 'SURPRISE'")),
    ],
    ids=["added", "modified", "deleted", "bookmark", "error-410-expired", "error-500", "unknown-type"],
)
def test_watch_lines(line: Obj, expected: StreamItem) -> None:
    assert read_event(json.dumps(line).encode()) == expected


@pytest.mark.parametrize(
    "line", [b"{not json", b'["a list"]', b'{"type": "ADDED"}'], ids=["not-json", "not-an-object", "no-object"]
)
def test_lines_that_are_not_events_fail_the_watch(line: bytes) -> None:
    assert isinstance(read_event(line), Failed)


# ------------------------------------------------------------------------------------------------ relist diff


@pytest.mark.parametrize(
    ("known", "listed", "expected"),
    [
        ([], [cm("a", "1")], ListDiff(added=(cm("a", "1"),))),
        ([cm("a", "1")], [cm("a", "1")], ListDiff()),
        ([cm("a", "1")], [cm("a", "4")], ListDiff(modified=(cm("a", "4"),))),
        ([cm("a", "1"), cm("b", "2")], [cm("b", "2")], ListDiff(deleted=(cm("a", "1"),))),
        ([cm("a", "1")], [cm("a", "1", "other")], ListDiff(added=(cm("a", "1", "other"),), deleted=(cm("a", "1"),))),
        (
            [cm("a", "1"), cm("b", "2"), cm("c", "3")],
            [cm("c", "9"), cm("d", "8"), cm("a", "1")],
            ListDiff(added=(cm("d", "8"),), modified=(cm("c", "9"),), deleted=(cm("b", "2"),)),
        ),
    ],
    ids=["first-list", "nothing-changed", "modified", "deleted-meanwhile", "same-name-other-namespace", "all-at-once"],
)
def test_relist_difference(known: list[Obj], listed: list[Obj], expected: ListDiff) -> None:
    from meshplane.kube_watch_events import object_key

    diff = list_diff({object_key(obj): obj for obj in known}, listed)
    assert diff == expected
    assert bool(diff) == bool(expected.added or expected.modified or expected.deleted)
    assert [e.type for e in diff.events] == ["DELETED"] * len(expected.deleted) + ["ADDED"] * len(expected.added) + [
        "MODIFIED"
    ] * len(expected.modified)


def test_what_a_watcher_keeps_of_an_object() -> None:
    pod = kb.pod("reviews-v1-7d8f9c6b5-abcde", "10.244.0.12")
    assert identity(pod) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "reviews-v1-7d8f9c6b5-abcde", "namespace": "bookinfo", "resourceVersion": "48213"},
    }
    assert identity(kb.namespace())["metadata"] == {"name": "bookinfo", "resourceVersion": "48213"}


# ------------------------------------------------------------------------------------------------ backoff


@pytest.mark.parametrize(
    ("pick", "expected"),
    [
        (max, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
        (min, [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]),
    ],
    ids=["upper-bound", "lower-bound"],
)
def test_backoff_doubles_up_to_the_cap_with_jitter(pick: Any, expected: list[float]) -> None:
    backoff = Backoff(initial=0.5, cap=30.0, uniform=lambda low, high: pick(low, high))
    assert [backoff.next_delay() for _ in expected] == expected
    assert backoff.failures == len(expected)
    backoff.reset()
    assert backoff.next_delay() == expected[0]


def test_backoff_draws_within_half_and_whole_of_the_ceiling() -> None:
    draws: list[tuple[float, float]] = []
    backoff = Backoff(initial=1.0, cap=4.0, uniform=lambda low, high: draws.append((low, high)) or low)
    for _ in range(4):
        backoff.next_delay()
    assert draws == [(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (2.0, 4.0)]


@pytest.mark.parametrize(("initial", "cap"), [(0.0, 1.0), (2.0, 1.0)], ids=["zero-initial", "cap-below-initial"])
def test_backoff_settings_are_checked(initial: float, cap: float) -> None:
    with pytest.raises(ValueError, match="0 < initial <= cap"):
        Backoff(initial=initial, cap=cap)


# ------------------------------------------------------------------------------------------------ discovery


@pytest.mark.parametrize(
    ("kind", "served", "expected"),
    [
        (REGISTRY_KINDS["EndpointSlice"], {"v1": {"endpointslices"}, "v1beta1": {"endpointslices"}}, "v1"),
        (REGISTRY_KINDS["EndpointSlice"], {"v1beta1": {"endpointslices"}}, "v1beta1"),  # Kubernetes 1.20
        (REGISTRY_KINDS["EndpointSlice"], {}, None),
        (VIRTUAL_SERVICE, {"v1alpha3": {"virtualservices"}, "v1beta1": {"virtualservices"}}, "v1beta1"),
        (KINDS["WorkloadEntry"], {"v1": {"virtualservices"}, "v1alpha3": {"workloadentries"}}, "v1alpha3"),
        (KINDS["RateLimit"], {"v1": {"accesslists"}}, None),  # the group is there, the CRD is not
        (REGISTRY_KINDS["Pod"], {"v1": {"pods", "services"}}, "v1"),
    ],
    ids=[
        "endpointslice-v1-preferred",
        "endpointslice-v1beta1-only",
        "endpointslice-not-served",
        "newest-istio-version-served",
        "version-that-serves-the-kind",
        "crd-not-installed",
        "core",
    ],
)
def test_discovery_choice(kind: ApiKind, served: dict[str, set[str]], expected: str | None) -> None:
    assert choose_version(kind, {version: frozenset(p) for version, p in served.items()}) == expected


@pytest.mark.parametrize(
    ("kind", "namespace", "path"),
    [
        (REGISTRY_KINDS["Pod"], None, "/api/v1/pods"),
        (REGISTRY_KINDS["Pod"], "shop", "/api/v1/namespaces/shop/pods"),
        (REGISTRY_KINDS["Node"], "shop", "/api/v1/nodes"),
        (VIRTUAL_SERVICE, "shop", "/apis/networking.istio.io/v1/namespaces/shop/virtualservices"),
    ],
    ids=["core-every-namespace", "core-one-namespace", "cluster-scoped", "custom"],
)
def test_collection_paths(kind: ApiKind, namespace: str | None, path: str) -> None:
    assert kind.collection_path("v1", namespace) == path


# ------------------------------------------------------------------------------------------------ config source


def vs(name: str = "reviews", version: str = "7", host: str = "reviews", weight: int = 100) -> Obj:
    spec = {"hosts": [host], "http": [{"route": [{"destination": {"host": host}, "weight": weight}]}]}
    return config_object("VirtualService", name, spec, resource_version=version)


def listed(kind: ApiKind, objects: list[Obj], diff: ListDiff, *, relist: bool = False) -> Listed:
    return Listed(kind=kind, objects=tuple(objects), diff=diff, relist=relist, resource_version="100")


def changed(kind: ApiKind, type_: Any, obj: Obj) -> Changed:
    return Changed(kind=kind, event=Event(type_, obj))


class _Source:
    def __init__(self, *, files: bool = False) -> None:
        self.store = ConfigStore(sources=store_sources(kubernetes=True, files=files))
        self.changes: list[StoreChange] = []
        self.sink = ConfigSink(self.store, self.changes.append)
        self.api = client.ApiClient()
        self.source = KubernetesConfigSource(self.api, self.sink)

    def apply(self, *deliveries: Delivery) -> None:
        self.source.apply(deliveries)


@pytest.fixture
def kube_source() -> Iterator[_Source]:
    source = _Source(files=True)
    yield source
    source.api.close()  # type: ignore[no-untyped-call]  # untyped upstream


def test_listed_objects_are_in_force_with_their_object_reference(kube_source: _Source) -> None:
    kube_source.apply(listed(VIRTUAL_SERVICE, [vs()], ListDiff(added=(vs(),))))
    resource = kube_source.store.accepted[REVIEWS_VS]
    assert str(resource.meta.origin) == "VirtualService/default/reviews@7"
    assert len(kube_source.changes) == 1


def test_a_relist_is_a_replace(kube_source: _Source) -> None:
    """What was deleted while the watch was down goes; what changed is read again; the rest is not re-read."""
    ratings = vs("ratings", "8", "ratings")
    kube_source.apply(listed(VIRTUAL_SERVICE, [vs(), ratings], ListDiff(added=(vs(), ratings))))
    newer = vs(version="12")
    kube_source.apply(listed(VIRTUAL_SERVICE, [newer], ListDiff(modified=(newer,), deleted=(ratings,)), relist=True))
    accepted = kube_source.store.accepted
    assert list(accepted) == [REVIEWS_VS]
    assert str(accepted[REVIEWS_VS].meta.origin) == "VirtualService/default/reviews@12"


def test_events_in_one_batch_are_published_once_last_one_winning(kube_source: _Source) -> None:
    kube_source.apply(
        changed(VIRTUAL_SERVICE, "ADDED", vs(version="3")),
        changed(VIRTUAL_SERVICE, "MODIFIED", vs(version="4")),
        changed(VIRTUAL_SERVICE, "ADDED", vs("gone", "5", "gone")),
        changed(VIRTUAL_SERVICE, "DELETED", vs("gone", "6", "gone")),
    )
    assert [str(r.meta.origin) for r in kube_source.store.accepted.values()] == ["VirtualService/default/reviews@4"]
    assert len(kube_source.changes) == 1
    kube_source.apply(changed(VIRTUAL_SERVICE, "DELETED", vs(version="9")))
    assert kube_source.store.accepted == {}


def test_invalid_object_is_rejected_with_its_reference(kube_source: _Source) -> None:
    bad = vs(version="21", weight=-1)
    kube_source.apply(changed(VIRTUAL_SERVICE, "ADDED", bad))
    (rejection,) = kube_source.store.rejections
    assert (rejection.key, rejection.source, rejection.unit) == (
        REVIEWS_VS,
        KUBERNETES,
        "VirtualService/default/reviews",
    )
    assert [str(e.origin) for e in rejection.errors] == ["VirtualService/default/reviews@21"]
    assert rejection.errors[0].path == "spec.http[0].route[0].weight"


def test_other_istio_kinds_get_a_warning_naming_them(kube_source: _Source) -> None:
    gateway = config_object("WasmPlugin", "ingress", {"url": "oci://x"}, resource_version="31")
    kube_source.apply(changed(VIRTUAL_SERVICE, "ADDED", gateway))
    assert kube_source.store.accepted == {}
    (warning,) = kube_source.store.warnings
    assert warning.startswith("WasmPlugin/default/ingress@31: skipped WasmPlugin (networking.istio.io/v1)")


def test_the_cluster_wins_a_key_a_file_defines_too(kube_source: _Source) -> None:
    text = (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
        "spec: {hosts: [x], http: [{route: [{destination: {host: x}}]}]}\n"
    )
    kube_source.sink.publish(FILES, [parse_config_text(text, "local/reviews.yaml")])
    kube_source.apply(changed(VIRTUAL_SERVICE, "ADDED", vs()))
    assert str(kube_source.store.accepted[REVIEWS_VS].meta.origin) == "VirtualService/default/reviews@7"
    (rejection,) = kube_source.store.rejections
    assert rejection.source == FILES
    assert rejection.errors[0].message == (
        "VirtualService default/reviews is already defined at VirtualService/default/reviews@7; "
        "this definition is ignored"
    )


@pytest.mark.parametrize(
    ("kubernetes", "files", "expected"),
    [(True, True, ("kubernetes", "files")), (True, False, ("kubernetes",)), (False, True, ("files",))],
    ids=["both", "cluster", "files"],
)
def test_store_sources(kubernetes: bool, files: bool, expected: tuple[str, ...]) -> None:
    assert store_sources(kubernetes=kubernetes, files=files) == expected


def test_a_source_is_needed() -> None:
    with pytest.raises(ValueError, match="a config source is needed"):
        store_sources(kubernetes=False, files=False)


# ------------------------------------------------------------------------------------------------ registry feed

SERVICE, SLICE, POD = REGISTRY_KINDS["Service"], REGISTRY_KINDS["EndpointSlice"], REGISTRY_KINDS["Pod"]
V1 = "reviews-v1-7d8f9c6b5-abcde"


def test_registry_batches_apply_in_order() -> None:
    kube = KubernetesRegistry()
    pod = kb.pod(V1, "10.244.0.12")
    first = apply_deliveries(
        kube,
        [
            listed(SERVICE, [kb.service()], ListDiff(added=(kb.service(),))),
            listed(POD, [pod], ListDiff(added=(pod,))),
            changed(SLICE, "ADDED", kb.endpoint_slice(endpoints=[kb.endpoint("10.244.0.12", V1)])),
        ],
    )
    assert first.level is ChangeLevel.SERVICES
    (service,) = kube.state({}).services
    assert [e.address for e in service.endpoints[9080]] == ["10.244.0.12"]
    relisted = apply_deliveries(kube, [listed(POD, [], ListDiff(deleted=(pod,)), relist=True)])
    assert relisted.level is ChangeLevel.SERVICES  # the pod's workload went with the relist
    assert kube.state({}).workloads == ()
