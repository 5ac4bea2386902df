"""Auto-allocated VIPs: in Istio's range, a function of the host alone, distinct, and never for wildcards."""

from __future__ import annotations

import ipaddress
from types import MappingProxyType

import pytest

import pilot.model.vips as vips_module
from pilot.config.types import ConfigKey, Protocol, Resolution, ServicePort
from pilot.model import build_snapshot
from pilot.model.types import Service
from pilot.model.vips import AUTO_VIP_NETWORK, allocate_vips
from tests.conftest import IstioDocs, bookinfo


def service(host: str, addresses: tuple[str, ...] = (), resolution: Resolution = Resolution.STATIC) -> Service:
    return Service(
        host=host,
        namespace="default",
        ports=(ServicePort(number=9080, name="http", protocol=Protocol.HTTP),),
        resolution=resolution,
        mesh_internal=True,
        endpoints=MappingProxyType({}),
        source=ConfigKey(kind="ServiceEntry", namespace="default", name=host.split(".")[0]),
        addresses=addresses,
    )


def services(*items: Service) -> dict[str, Service]:
    return {s.host: s for s in items}


def test_each_concrete_host_gets_one_distinct_vip_in_istios_range() -> None:
    hosts = [f"svc{i}.default.svc.cluster.local" for i in range(2000)]
    allocated = allocate_vips(services(*(service(h) for h in hosts)))
    assert sorted(allocated) == sorted(hosts)
    addresses = [a for (a,) in allocated.values()]
    assert len(set(addresses)) == len(addresses)
    for address in addresses:
        ip = ipaddress.IPv4Address(address)
        assert ip in AUTO_VIP_NETWORK and ip not in (
            AUTO_VIP_NETWORK.network_address,
            AUTO_VIP_NETWORK.broadcast_address,
        )


def test_a_hosts_vip_does_not_depend_on_the_other_services() -> None:
    alone = allocate_vips(services(service("reviews.default.svc.cluster.local")))
    among = allocate_vips(
        services(
            *(service(f"s{i}.ns.svc.cluster.local") for i in range(50)), service("reviews.default.svc.cluster.local")
        )
    )
    assert among["reviews.default.svc.cluster.local"] == alone["reviews.default.svc.cluster.local"]


def test_own_addresses_are_kept_and_never_handed_out_again(monkeypatch: pytest.MonkeyPatch) -> None:
    own = service("db.example.com", addresses=("240.240.0.7",))
    other = service("reviews.default.svc.cluster.local")
    monkeypatch.setattr(vips_module, "_COUNT", 7)  # a range of 7 addresses: 240.240.0.1 .. .7
    allocated = allocate_vips(services(own, other, service("ratings.default.svc.cluster.local")))
    assert allocated["db.example.com"] == ("240.240.0.7",)
    rest = [allocated["reviews.default.svc.cluster.local"], allocated["ratings.default.svc.cluster.local"]]
    assert ("240.240.0.7",) not in rest and rest[0] != rest[1]


def test_a_full_range_is_an_error_not_a_duplicate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vips_module, "_COUNT", 2)
    with pytest.raises(ValueError, match="no free address left"):
        allocate_vips(services(*(service(f"s{i}.default.svc.cluster.local") for i in range(3))))


def test_wildcard_hosts_and_passthrough_services_get_no_vip() -> None:
    passthrough = service("db.example.com", resolution=Resolution.NONE)
    assert dict(allocate_vips(services(service("*.example.com"), passthrough))) == {}
    own = service("db.example.com", addresses=("10.0.0.9",), resolution=Resolution.NONE)
    assert dict(allocate_vips(services(own))) == {"db.example.com": ("10.0.0.9",)}


def test_the_snapshot_carries_every_services_vips() -> None:
    snapshot = build_snapshot(bookinfo(), version=1)
    assert set(snapshot.vips) == set(snapshot.services)
    assert snapshot.vips == build_snapshot(bookinfo(), version=2).vips  # same hosts, same VIPs (a restart)


@pytest.mark.parametrize(
    ("addresses", "vips"),
    [
        (("10.0.0.1", "10.0.0.2"), ("10.0.0.1", "10.0.0.2")),
        (("10.0.0.1", "10.9.0.0/16"), ("10.0.0.1",)),  # a CIDR block is matched by listeners, never resolved to
        (("10.9.0.0/16",), None),  # addresses of its own, none a single IP: nothing allocated either (Istio)
    ],
    ids=["ips", "ip-and-cidr", "cidr-only"],
)
def test_own_ip_addresses_are_the_vips_and_cidrs_are_not(
    addresses: tuple[str, ...], vips: tuple[str, ...] | None
) -> None:
    host = "db.default.svc.cluster.local"
    assert allocate_vips(services(service(host, addresses))).get(host) == vips


def test_service_entry_addresses_reach_the_service_in_canonical_form() -> None:
    entry = IstioDocs().accepted(
        "ServiceEntry", "hosts: [db.example.com]\naddresses: [10.1.2.3, 10.9.1.0/16, 10.8.0.7/32, '2001:db8::1/128']\n"
    )
    snap = build_snapshot({entry.meta.key: entry}, version=1)
    assert snap.services["db.example.com"].addresses == ("10.1.2.3", "10.9.0.0/16", "10.8.0.7", "2001:db8::1")
    assert snap.vips["db.example.com"] == ("10.1.2.3", "10.8.0.7", "2001:db8::1")
