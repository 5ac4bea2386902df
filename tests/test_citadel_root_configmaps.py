"""citadel.root_configmaps and root_cert_publisher: which namespaces are stale, the idempotent write against a fake
API (create, update only when different, conflicts, terminating namespaces), the publisher's retries and what it
makes of the watches' deliveries. The watch itself (``meshplane.kube_watch``): tests/test_kube_watcher.py."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from citadel.authority import Authority
from citadel.ca import SigningCA, create_root
from citadel.metrics import CitadelMetrics
from citadel.root_cert_publisher import NAMESPACES, ROOT_CERT_CONFIGMAPS, RootCertPublisher
from citadel.root_configmaps import ROOT_CERT_CONFIGMAP, KubeDict, RootCertState, publishes_to, write_root_cert
from meshplane.kube_kinds import ApiKind
from meshplane.kube_watch import Changed, Delivery, Listed, Unavailable
from meshplane.kube_watch_events import Event, ListDiff

BUNDLE = "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n"


def watched(obj: Any) -> KubeDict:
    """A typed object as a watch delivers it: the API's JSON (camelCase keys, timestamps as text)."""
    plain: KubeDict = client.ApiClient().sanitize_for_serialization(obj)
    return plain


def namespace(name: str, *, phase: str = "Active", deleting: bool = False) -> KubeDict:
    return watched(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, deletion_timestamp=datetime.now(UTC) if deleting else None),
            status=client.V1NamespaceStatus(phase=phase),
        )
    )


def configmap(ns: str, bundle: str | None = BUNDLE, **extra: str) -> client.V1ConfigMap:
    data = ({"root-cert.pem": bundle} if bundle is not None else {}) | extra
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(
            name=ROOT_CERT_CONFIGMAP, namespace=ns, labels={"istio.io/config": "true"}, resource_version="1"
        ),
        data=data,
    )


@pytest.mark.parametrize(
    ("item", "published"),
    [
        (namespace("bookinfo"), True),
        (namespace("kube-system"), False),
        (namespace("kube-public"), False),
        (namespace("kube-node-lease"), False),
        (namespace("local-path-storage"), False),
        (namespace("istio-system"), True),
        (namespace("leaving", phase="Terminating"), False),
        (namespace("leaving", deleting=True), False),
    ],
    ids=[
        "app",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "local-path-storage",
        "istio-system",
        "terminating",
        "being-deleted",
    ],
)
def test_namespaces_istio_skips_and_terminating_ones_get_no_configmap(item: KubeDict, published: bool) -> None:
    assert publishes_to(item) is published


def listed_state(namespaces: list[str], configmaps: list[client.V1ConfigMap]) -> RootCertState:
    state = RootCertState()
    state.namespaces_listed([namespace(n) for n in namespaces])
    state.configmaps_listed([watched(c) for c in configmaps])
    return state


def test_nothing_is_stale_before_both_lists_arrived() -> None:
    state = RootCertState()
    state.namespaces_listed([namespace("bookinfo")])
    assert state.stale(BUNDLE) == []
    state.configmaps_listed([])
    assert state.stale(BUNDLE) == ["bookinfo"]


@pytest.mark.parametrize(
    ("events", "stale"),
    [
        ([], ["no-configmap", "old-bundle"]),
        ([("namespace", "ADDED", namespace("new"))], ["new", "no-configmap", "old-bundle"]),
        ([("namespace", "DELETED", namespace("no-configmap"))], ["old-bundle"]),
        ([("namespace", "MODIFIED", namespace("no-configmap", phase="Terminating"))], ["old-bundle"]),
        ([("configmap", "DELETED", watched(configmap("current")))], ["current", "no-configmap", "old-bundle"]),
        (
            [("configmap", "MODIFIED", watched(configmap("current", "tampered")))],
            ["current", "no-configmap", "old-bundle"],
        ),
        ([("configmap", "ADDED", watched(configmap("no-configmap")))], ["old-bundle"]),
        ([("configmap", "ADDED", watched(configmap("kube-system")))], ["no-configmap", "old-bundle"]),
    ],
    ids=[
        "listed",
        "namespace-added",
        "namespace-deleted",
        "namespace-terminating",
        "configmap-deleted",
        "configmap-tampered",
        "configmap-created",
        "configmap-in-an-ignored-namespace",
    ],
)
def test_stale_namespaces_follow_the_watch_events(events: list[tuple[str, str, Any]], stale: list[str]) -> None:
    state = listed_state(
        ["current", "no-configmap", "old-bundle", "kube-system"],
        [configmap("current"), configmap("old-bundle", "old")],
    )
    for kind, event, item in events:
        (state.namespace_changed if kind == "namespace" else state.configmap_changed)(event, item)
    assert state.stale(BUNDLE) == stale


@dataclass
class FakeCoreApi:
    """The ConfigMap calls of CoreV1Api over a dict; ``failures`` raises the next queued error of a call."""

    configmaps: dict[str, client.V1ConfigMap] = field(default_factory=dict)
    failures: dict[str, list[ApiException]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        queued = self.failures.get(name)
        if queued:
            raise queued.pop(0)

    def read_namespaced_config_map(self, name: str, ns: str, **_: Any) -> client.V1ConfigMap:
        self._call("read")
        assert name == ROOT_CERT_CONFIGMAP
        if ns not in self.configmaps:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.configmaps[ns])

    def create_namespaced_config_map(self, ns: str, body: client.V1ConfigMap, **_: Any) -> None:
        self._call("create")
        if ns in self.configmaps:
            raise ApiException(status=409, reason="AlreadyExists")
        self.configmaps[ns] = body

    def replace_namespaced_config_map(self, name: str, ns: str, body: client.V1ConfigMap, **_: Any) -> None:
        self._call("replace")
        if body.metadata.resource_version != self.configmaps[ns].metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        self.configmaps[ns] = body


def terminating() -> ApiException:
    failure = ApiException(status=403, reason="Forbidden")
    failure.body = '{"message": "unable to create new content in namespace x because it is being terminated"}'
    return failure


@pytest.mark.parametrize(
    ("existing", "failures", "action", "calls"),
    [
        (None, {}, "created", ["read", "create"]),
        (configmap("ns"), {}, "unchanged", ["read"]),
        (configmap("ns", "old"), {}, "updated", ["read", "replace"]),
        (configmap("ns", None), {}, "updated", ["read", "replace"]),
        (None, {"create": [ApiException(status=409, reason="AlreadyExists")]}, "created", ["read", "create"] * 2),
        (configmap("ns", "old"), {"replace": [ApiException(status=409)]}, "updated", ["read", "replace"] * 2),
        (None, {"create": [terminating()]}, "gone", ["read", "create"]),
        (None, {"create": [ApiException(status=404, reason="Not Found")]}, "gone", ["read", "create"]),
    ],
    ids=[
        "missing",
        "same-bundle",
        "other-bundle",
        "key-missing",
        "created-meanwhile",
        "changed-meanwhile",
        "namespace-terminating",
        "namespace-gone",
    ],
)
def test_the_write_creates_or_updates_only_what_differs(
    existing: client.V1ConfigMap | None, failures: dict[str, list[ApiException]], action: str, calls: list[str]
) -> None:
    api = FakeCoreApi(configmaps={"ns": existing} if existing is not None else {}, failures=failures)
    assert write_root_cert(api, "ns", BUNDLE) == action  # type: ignore[arg-type]
    assert api.calls == calls
    if action in ("created", "updated", "unchanged"):
        written = api.configmaps["ns"]
        assert written.data["root-cert.pem"] == BUNDLE
        assert written.metadata.labels["istio.io/config"] == "true"


def test_an_update_keeps_other_keys_and_labels() -> None:
    existing = configmap("ns", "old", extra="kept")
    existing.metadata.labels["team"] = "a"
    api = FakeCoreApi(configmaps={"ns": existing})
    write_root_cert(api, "ns", BUNDLE)  # type: ignore[arg-type]
    assert api.configmaps["ns"].data == {"root-cert.pem": BUNDLE, "extra": "kept"}
    assert api.configmaps["ns"].metadata.labels == {"istio.io/config": "true", "team": "a"}


def test_a_forbidden_write_is_raised_for_the_caller_to_log() -> None:
    api = FakeCoreApi(failures={"create": [ApiException(status=403, reason="Forbidden")]})
    with pytest.raises(ApiException) as refused:
        write_root_cert(api, "ns", BUNDLE)  # type: ignore[arg-type]
    assert refused.value.status == 403


def test_two_writers_with_one_bundle_write_once() -> None:
    api = FakeCoreApi()
    assert [write_root_cert(api, "ns", BUNDLE) for _ in range(2)] == ["created", "unchanged"]  # type: ignore[arg-type]


@dataclass
class Ticks:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def authority() -> Authority:
    root, key = create_root("cluster.local")
    return Authority(signer=SigningCA(cert=root, key=key, chain=()), trust_bundle=[root], cert_ttl=timedelta(hours=1))


async def test_the_publisher_writes_stale_namespaces_and_retries_failures_after_a_backoff() -> None:
    ca = authority()
    api = FakeCoreApi(failures={"create": [ApiException(status=500, reason="Internal Server Error")]})
    ticks = Ticks()
    publisher = RootCertPublisher(api, authority=ca, metrics=CitadelMetrics(), clock=ticks)  # type: ignore[arg-type]
    publisher.state.namespaces_listed([namespace("a"), namespace("b")])
    publisher.state.configmaps_listed([])

    assert await publisher.publish() == 1  # "a" failed, "b" written
    assert sorted(api.configmaps) == ["b"]
    assert await publisher.publish() == 0  # "a" waits for its retry time
    ticks.now += 2.0
    assert await publisher.publish() == 1
    assert api.configmaps["a"].data["root-cert.pem"] == ca.trust_bundle_pem.decode()
    assert await publisher.publish() == 0
    assert publisher.state.stale(ca.trust_bundle_pem.decode()) == []


async def test_a_new_trust_bundle_makes_every_namespace_stale() -> None:
    ca = authority()
    api = FakeCoreApi()
    publisher = RootCertPublisher(api, authority=ca)  # type: ignore[arg-type]
    publisher.state.namespaces_listed([namespace("a"), namespace("b")])
    publisher.state.configmaps_listed([])
    assert await publisher.publish() == 2
    new_root, _ = create_root("cluster.local")
    ca.use_trust_bundle([new_root, *ca.trust_bundle])
    assert await publisher.publish() == 2
    assert {c.data["root-cert.pem"] for c in api.configmaps.values()} == {ca.trust_bundle_pem.decode()}


def listed(kind: ApiKind, *objects: KubeDict) -> Listed:
    return Listed(kind=kind, objects=objects, diff=ListDiff(added=objects), relist=False, resource_version="1")


@pytest.mark.parametrize(
    ("deliveries", "namespaces", "published"),
    [
        ([listed(NAMESPACES, namespace("a"), namespace("kube-system"))], {"a"}, {}),
        (
            [listed(ROOT_CERT_CONFIGMAPS, watched(configmap("a")))],
            set(),
            {"a": BUNDLE},
        ),
        (
            [
                listed(NAMESPACES, namespace("a"), namespace("b")),
                Changed(kind=NAMESPACES, event=Event("DELETED", namespace("b"))),
                Changed(kind=ROOT_CERT_CONFIGMAPS, event=Event("ADDED", watched(configmap("a", "old")))),
            ],
            {"a"},
            {"a": "old"},
        ),
        ([Unavailable(kind=NAMESPACES, reason="not served")], set(), {}),
    ],
    ids=["namespaces-listed", "configmaps-listed", "events", "unavailable-ignored"],
)
async def test_the_publisher_applies_each_kind_s_deliveries_to_its_state(
    deliveries: list[Delivery], namespaces: set[str], published: dict[str, str]
) -> None:
    publisher = RootCertPublisher(FakeCoreApi(), authority=authority())  # type: ignore[arg-type]
    for delivery in deliveries:
        publisher.apply(delivery)
    assert (publisher.state.namespaces, publisher.state.published) == (namespaces, published)
