"""Which mTLS mode applies to a workload's port (Istio's PeerAuthentication precedence), auto mTLS endpoints, and the
snapshot and node fields mutual TLS needs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType

import pytest
import structlog

from pilot.config.types import (
    ConfigMeta,
    MtlsMode,
    PeerAuthentication,
    Protocol,
    Resolution,
    Resource,
    ServiceEntry,
    ServicePort,
    WorkloadEntry,
)
from pilot.model import (
    DEFAULT_TRUST_DOMAIN,
    MeshSnapshot,
    build_snapshot,
    effective_mtls_mode,
    istio_tls_endpoint,
    mtls,
    parse_node_id,
    workload_port,
)

MakeMeta = Callable[..., ConfigMeta]


def policy(
    make_meta: MakeMeta,
    name: str,
    namespace: str,
    mode: MtlsMode = "UNSET",
    selector: Mapping[str, str] | None = None,
    ports: Mapping[int, MtlsMode] | None = None,
) -> PeerAuthentication:
    return PeerAuthentication(
        meta=make_meta("PeerAuthentication", name, namespace),
        selector=MappingProxyType(dict(selector)) if selector is not None else None,
        mode=mode,
        port_level_mtls=MappingProxyType(dict(ports or {})),
    )


def workload(make_meta: MakeMeta, name: str = "db-1", namespace: str = "shop", **labels: str) -> WorkloadEntry:
    return WorkloadEntry(
        meta=make_meta("WorkloadEntry", name, namespace),
        address="127.0.0.31",
        labels=MappingProxyType(labels or {"app": "db"}),
        ports=MappingProxyType({"sql": 15432, "http": 18080}),
    )


def snapshot_of(*resources: Resource, root_namespace: str = "istio-system") -> MeshSnapshot:
    return build_snapshot({r.meta.key: r for r in resources}, version=1, root_namespace=root_namespace)


# Each case: the policies (as (name, namespace, mode, selector, port-level)), the port asked, the mode expected.
Policy = tuple[str, str, MtlsMode, Mapping[str, str] | None, Mapping[int, MtlsMode] | None]
MESH_STRICT: Policy = ("default", "istio-system", "STRICT", None, None)
NS_DISABLE: Policy = ("default", "shop", "DISABLE", None, None)
NS_UNSET: Policy = ("default", "shop", "UNSET", None, None)
WL_PERMISSIVE: Policy = ("db", "shop", "PERMISSIVE", {"app": "db"}, None)
WL_UNSET_PORT_STRICT: Policy = ("db", "shop", "UNSET", {"app": "db"}, {15432: "STRICT", 18080: "UNSET"})

PRECEDENCE: list[tuple[str, list[Policy], int | None, str]] = [
    ("nothing-is-permissive", [], 15432, "PERMISSIVE"),
    ("mesh-wide", [MESH_STRICT], 15432, "STRICT"),
    ("mesh-unset-is-permissive", [("default", "istio-system", "UNSET", None, None)], 15432, "PERMISSIVE"),
    ("namespace-over-mesh", [MESH_STRICT, NS_DISABLE], 15432, "DISABLE"),
    ("namespace-unset-inherits-mesh", [MESH_STRICT, NS_UNSET], 15432, "STRICT"),
    ("workload-over-namespace", [MESH_STRICT, NS_DISABLE, WL_PERMISSIVE], 15432, "PERMISSIVE"),
    ("port-over-workload", [NS_DISABLE, WL_UNSET_PORT_STRICT], 15432, "STRICT"),
    ("workload-unset-inherits-namespace", [NS_DISABLE, WL_UNSET_PORT_STRICT], 9999, "DISABLE"),
    ("port-unset-inherits", [MESH_STRICT, WL_UNSET_PORT_STRICT], 18080, "STRICT"),
    ("no-port-asked", [NS_DISABLE, WL_UNSET_PORT_STRICT], None, "DISABLE"),
    ("selector-not-matching", [NS_DISABLE, ("web", "shop", "STRICT", {"app": "web"}, None)], 15432, "DISABLE"),
    ("other-namespace-ignored", [("default", "other", "STRICT", None, None)], 15432, "PERMISSIVE"),
    ("other-namespace-selector-ignored", [("db", "other", "STRICT", {"app": "db"}, None)], 15432, "PERMISSIVE"),
    ("root-selector-only-for-root", [("db", "istio-system", "STRICT", {"app": "db"}, None)], 15432, "PERMISSIVE"),
]  # fmt: skip


@pytest.mark.parametrize(("policies", "port", "expected"), [c[1:] for c in PRECEDENCE], ids=[c[0] for c in PRECEDENCE])
def test_precedence(make_meta: MakeMeta, policies: list[Policy], port: int | None, expected: str) -> None:
    db = workload(make_meta)
    built = [policy(make_meta, n, ns, mode, selector, ports) for n, ns, mode, selector, ports in policies]
    assert effective_mtls_mode(snapshot_of(db, *built), db, port) == expected


def test_root_namespace_is_configurable(make_meta: MakeMeta) -> None:
    db = workload(make_meta)
    mesh_policy = policy(make_meta, "default", "mesh-root", "STRICT")
    assert effective_mtls_mode(snapshot_of(db, mesh_policy), db, None) == "PERMISSIVE"
    assert effective_mtls_mode(snapshot_of(db, mesh_policy, root_namespace="mesh-root"), db, None) == "STRICT"


def test_workload_in_the_root_namespace(make_meta: MakeMeta) -> None:
    """Its namespace-wide policy is the mesh-wide one; a selector there does select it."""
    gateway = workload(make_meta, "gw", "istio-system", app="gw")
    mesh_policy = policy(make_meta, "default", "istio-system", "STRICT")
    selected = policy(make_meta, "gw", "istio-system", "DISABLE", {"app": "gw"})
    assert effective_mtls_mode(snapshot_of(gateway, mesh_policy), gateway, None) == "STRICT"
    assert effective_mtls_mode(snapshot_of(gateway, mesh_policy, selected), gateway, None) == "DISABLE"


@pytest.mark.parametrize(
    ("first", "second", "level"),
    [
        (("a", "istio-system", "STRICT", None), ("b", "istio-system", "DISABLE", None), "mesh-wide"),
        (("a", "shop", "STRICT", None), ("b", "shop", "DISABLE", None), "namespace-wide"),
        (("a", "shop", "STRICT", {"app": "db"}), ("b", "shop", "DISABLE", {"app": "db"}), "workload (db-1)"),
    ],
    ids=["mesh", "namespace", "workload"],
)
def test_one_policy_per_level_first_by_name_wins(
    monkeypatch: pytest.MonkeyPatch,
    make_meta: MakeMeta,
    first: tuple[str, str, MtlsMode, dict[str, str] | None],
    second: tuple[str, str, MtlsMode, dict[str, str] | None],
    level: str,
) -> None:
    """Istio takes the oldest; files have no creation time, so the first in name order, whatever the file order."""
    monkeypatch.setattr(mtls, "_warned", set())
    db = workload(make_meta)
    a, b = (policy(make_meta, n, ns, mode, selector) for n, ns, mode, selector in (first, second))
    with structlog.testing.capture_logs() as logs:
        assert effective_mtls_mode(snapshot_of(db, b, a), db, None) == "STRICT"
        assert effective_mtls_mode(snapshot_of(db, a, b), db, None) == "STRICT"
    (ignored,) = [e for e in logs if e["event"] == "peer_authentication_ignored"]  # once, not per snapshot
    assert (ignored["log_level"], ignored["applies"], ignored["ignored"]) == ("warning", "a", "b")
    assert level in ignored["reason"]


def test_snapshot_indexes_peer_authentications_by_namespace(make_meta: MakeMeta) -> None:
    built = snapshot_of(
        policy(make_meta, "z", "shop", "STRICT"),
        policy(make_meta, "a", "shop", "DISABLE"),
        policy(make_meta, "default", "istio-system", "STRICT"),
    )
    assert {ns: [p.meta.key.name for p in ps] for ns, ps in built.peer_authentications.items()} == {
        "istio-system": ["default"],
        "shop": ["a", "z"],
    }
    assert (
        (built.trust_domain, built.root_namespace)
        == (DEFAULT_TRUST_DOMAIN, "istio-system")
        == (
            "cluster.local",
            "istio-system",
        )
    )
    assert build_snapshot({}, version=1, trust_domain="example.org").trust_domain == "example.org"


def test_a_peer_authentication_change_is_a_changed_kind(make_meta: MakeMeta) -> None:
    strict = policy(make_meta, "default", "shop", "STRICT")
    disable = policy(make_meta, "default", "shop", "DISABLE")
    disable = replace(disable, meta=replace(disable.meta, content_hash="disable"))
    first = snapshot_of(strict)
    second = build_snapshot({disable.meta.key: disable}, version=2, previous=first)
    assert second.changed_kinds == {"PeerAuthentication"}


SQL = ServicePort(number=5432, name="sql", protocol=Protocol.TCP)


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        (SQL, 15432),
        (ServicePort(number=8080, name="web", protocol=Protocol.HTTP, target_port=18081), 18081),
        (ServicePort(number=8080, name="other", protocol=Protocol.HTTP), 8080),
    ],
    ids=["workload-port", "target-port", "service-port"],
)
def test_workload_port(make_meta: MakeMeta, port: ServicePort, expected: int) -> None:
    assert workload_port(workload(make_meta), port) == expected


@pytest.mark.parametrize(
    ("labels", "policies", "expected"),
    [
        ({"app": "db"}, [], True),
        ({"app": "db", "security.istio.io/tlsMode": "istio"}, [], True),
        ({"app": "db", "security.istio.io/tlsMode": "disabled"}, [], False),
        ({"app": "db"}, [NS_DISABLE], False),
        ({"app": "db"}, [NS_DISABLE, WL_UNSET_PORT_STRICT], True),  # the sql port (15432) is STRICT
        ({"app": "db"}, [("db", "shop", "STRICT", {"app": "db"}, {15432: "DISABLE"})], False),
        ({"app": "db"}, [MESH_STRICT], True),
    ],
    ids=[
        "sidecar",
        "label-istio",
        "label-disabled",
        "namespace-disable",
        "port-strict-in-disabled-namespace",
        "port-disable",
        "strict",
    ],
)
def test_istio_tls_endpoint(
    make_meta: MakeMeta, labels: dict[str, str], policies: list[Policy], expected: bool
) -> None:
    db = workload(make_meta, **labels)
    built = [policy(make_meta, n, ns, mode, selector, ports) for n, ns, mode, selector, ports in policies]
    assert istio_tls_endpoint(snapshot_of(db, *built), db, SQL) is expected


def test_node_metadata_is_kept_and_part_of_equality() -> None:
    node_id = "sidecar~127.0.0.21~reviews-v1.default~default.svc.cluster.local"
    plain = parse_node_id(node_id, "reviews-v1.default")
    with_sds = parse_node_id(node_id, "reviews-v1.default", {"MESHPLANE_SDS": "true", "NAMESPACE": "default"})
    assert dict(plain.metadata) == {}
    assert dict(with_sds.metadata) == {"MESHPLANE_SDS": "true", "NAMESPACE": "default"}
    assert with_sds != plain and hash(with_sds) == hash(plain)  # a dict key, told apart by equality
    assert with_sds == parse_node_id(node_id, "reviews-v1.default", {"NAMESPACE": "default", "MESHPLANE_SDS": "true"})
    assert len({plain, with_sds}) == 2


def test_services_of_a_mesh_with_policies_are_unchanged(make_meta: MakeMeta) -> None:
    """PeerAuthentications are indexed on their own: services and instances are built as before."""
    entry = ServiceEntry(
        meta=make_meta("ServiceEntry", "db", "shop"),
        hosts=("db.shop.svc.cluster.local",),
        ports=(SQL,),
        location="MESH_INTERNAL",
        resolution=Resolution.STATIC,
        workload_selector=MappingProxyType({"app": "db"}),
    )
    db = workload(make_meta)
    without = snapshot_of(entry, db)
    with_policy = snapshot_of(entry, db, policy(make_meta, "default", "istio-system", "STRICT"))
    assert with_policy.services == without.services
    assert with_policy.instances == without.instances
