"""The NDS name table a proxy's DNS proxy answers from: which hosts a proxy of a namespace gets, with which VIPs and
which Kubernetes-style short names; exportTo; no wildcards; served as one unnamed NameTable per namespace."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from types import MappingProxyType

import pytest

from meshplane.nds.v1.nds_pb2 import NameTable
from pilot.config.types import ConfigKey, ConfigMeta, Protocol, Resolution, ServiceEntry, ServicePort
from pilot.generate import name_table
from pilot.generate.registry import GENERATORS, NAME_TABLE_TYPE
from pilot.model import MeshSnapshot, Proxy, build_snapshot
from pilot.model.types import Service
from pilot.model.vips import AUTO_VIP_NETWORK, allocate_vips
from xdscore import make_resource

HTTP = (ServicePort(number=9080, name="http", protocol=Protocol.HTTP),)


@pytest.fixture
def entry(make_meta: Callable[..., ConfigMeta]) -> Callable[..., ServiceEntry]:
    def make(name: str, *hosts: str, namespace: str = "default", export_to: tuple[str, ...] = ()) -> ServiceEntry:
        return ServiceEntry(
            meta=make_meta("ServiceEntry", name, namespace),
            hosts=hosts,
            ports=HTTP,
            location="MESH_INTERNAL",
            resolution=Resolution.DNS if "example" in "".join(hosts) else Resolution.STATIC,
            export_to=export_to,
        )

    return make


def table_of(
    snapshot: MeshSnapshot, sidecar_proxy: Callable[..., Proxy], namespace: str = "default"
) -> dict[str, tuple[tuple[str, ...], str, str, str]]:
    """host -> (ips, registry, shortname, namespace) of the table a proxy of ``namespace`` gets."""
    table = name_table.build_name_table(sidecar_proxy(snapshot, "app", namespace=namespace), snapshot)
    return {h: (tuple(i.ips), i.registry, i.shortname, i.namespace) for h, i in table.table.items()}


def test_kubernetes_style_hosts_carry_their_short_name_and_namespace(
    entry: Callable[..., ServiceEntry], sidecar_proxy: Callable[..., Proxy]
) -> None:
    snapshot = build_snapshot(
        {
            e.meta.key: e
            for e in (
                entry("reviews", "reviews.default.svc.cluster.local"),
                entry("db", "db.prod.svc.cluster.local", namespace="prod"),
            )
        },
        version=1,
    )
    table = table_of(snapshot, sidecar_proxy)
    reviews_vips = snapshot.vips["reviews.default.svc.cluster.local"]
    assert table == {
        "db.prod.svc.cluster.local": (snapshot.vips["db.prod.svc.cluster.local"], "External", "db", "prod"),
        "reviews.default.svc.cluster.local": (reviews_vips, "External", "reviews", "default"),
    }
    [vip] = reviews_vips
    assert ipaddress.ip_address(vip) in AUTO_VIP_NETWORK


@pytest.mark.parametrize(
    ("host", "short"),
    [
        ("api.example.com", ("", "")),
        ("reviews.default.svc.cluster.local", ("reviews", "default")),
        ("a.b.default.svc.cluster.local", ("", "")),  # not <name>.<ns>.svc.<suffix>
        ("reviews.default.svc.other.local", ("", "")),  # another domain suffix
        ("reviews.svc.cluster.local", ("", "")),
    ],
    ids=["external", "kubernetes-style", "too-many-labels", "other-suffix", "no-namespace"],
)
def test_short_names_only_for_name_ns_svc_suffix(
    host: str, short: tuple[str, str], entry: Callable[..., ServiceEntry], sidecar_proxy: Callable[..., Proxy]
) -> None:
    snapshot = build_snapshot({(e := entry("se", host)).meta.key: e}, version=1)
    _, registry, shortname, namespace = table_of(snapshot, sidecar_proxy)[host]
    assert (registry, shortname, namespace) == ("External", *short)


def test_wildcard_hosts_are_left_out(entry: Callable[..., ServiceEntry], sidecar_proxy: Callable[..., Proxy]) -> None:
    se = entry("ext", "*.example.com", "api.example.com")
    snapshot = build_snapshot({se.meta.key: se}, version=1)
    assert sorted(table_of(snapshot, sidecar_proxy)) == ["api.example.com"]


@pytest.mark.parametrize(
    ("export_to", "visible_in"),
    [
        ((), {"default", "prod", "other"}),
        (("*",), {"default", "prod", "other"}),
        ((".",), {"prod"}),
        (("default",), {"default"}),
        (("prod", "other"), {"prod", "other"}),
        (("~",), set()),
    ],
    ids=["unset", "star", "dot", "one-namespace", "two-namespaces", "none"],
)
def test_export_to_decides_which_namespaces_get_a_host(
    export_to: tuple[str, ...],
    visible_in: set[str],
    entry: Callable[..., ServiceEntry],
    sidecar_proxy: Callable[..., Proxy],
) -> None:
    se = entry("db", "db.prod.svc.cluster.local", namespace="prod", export_to=export_to)
    snapshot = build_snapshot({se.meta.key: se}, version=1)
    got = {ns for ns in ("default", "prod", "other") if table_of(snapshot, sidecar_proxy, ns)}
    assert got == visible_in


def test_own_addresses_are_the_ips_and_cidrs_are_left_out(sidecar_proxy: Callable[..., Proxy]) -> None:
    def service(host: str, addresses: tuple[str, ...]) -> Service:
        return Service(
            host=host,
            namespace="default",
            ports=HTTP,
            resolution=Resolution.STATIC,
            mesh_internal=True,
            endpoints=MappingProxyType({}),
            source=ConfigKey(kind="ServiceEntry", namespace="default", name=host.split(".")[0]),
            addresses=addresses,
        )

    services = {
        s.host: s
        for s in (
            service("db.default.svc.cluster.local", ("10.96.0.10", "fd00::10")),
            service("net.example.com", ("192.168.0.0/16",)),
        )
    }
    snapshot = MeshSnapshot(version=1, services=MappingProxyType(services), vips=allocate_vips(services))
    assert table_of(snapshot, sidecar_proxy) == {
        "db.default.svc.cluster.local": (("10.96.0.10", "fd00::10"), "External", "db", "default"),
    }


def test_the_generator_serves_one_unnamed_table_per_namespace(
    entry: Callable[..., ServiceEntry], sidecar_proxy: Callable[..., Proxy]
) -> None:
    se = entry("reviews", "reviews.default.svc.cluster.local")
    snapshot = build_snapshot({se.meta.key: se}, version=1)
    generator = GENERATORS[NAME_TABLE_TYPE]
    proxy = sidecar_proxy(snapshot, "app")
    assert generator.wildcard
    assert generator.affected_by >= {"ServiceEntry"}
    assert generator.scopes(proxy) == [("name_table", "default")]
    assert generator.build_proxy(proxy, snapshot) == []
    [table] = generator.build_scope(("name_table", "default"), snapshot)
    assert table == name_table.build_name_table(proxy, snapshot)
    resource = make_resource(table)
    assert resource.name == ""  # Istio sends its NameTable unnamed
    assert NAME_TABLE_TYPE == "type.googleapis.com/istio.networking.nds.v1.NameTable"
    assert NameTable.FromString(table.SerializeToString()) == table
