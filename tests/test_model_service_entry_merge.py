"""Several ServiceEntries for one host, merged as Istio does: ports, inline endpoints and selected workloads of the
entries of the first one's namespace; another namespace's entry for the host is not merged."""

from __future__ import annotations

import dataclasses

from pilot.config.store import ConfigStore
from pilot.config.types import ServiceEntryEndpoint
from pilot.model import build_snapshot
from tests.route_builders import port, service_entry, workload
from tests.test_config_store import doc, files, rejected

HOST = "api.example.com"


def test_entries_of_one_namespace_merge_ports_endpoints_and_workloads() -> None:
    first = dataclasses.replace(
        service_entry("api-a", HOST, (port(80, name="http"),)),
        endpoints=(ServiceEntryEndpoint(address="10.0.0.1"),),
    )
    second = service_entry(
        "api-b", HOST, (port(80, name="other-name"), port(8080, name="admin")), selector={"app": "api"}
    )
    other_namespace = dataclasses.replace(
        service_entry("api-c", HOST, (port(9000),), namespace="shop"),
        endpoints=(ServiceEntryEndpoint(address="10.9.9.9"),),
    )
    pod = workload("api-1", "10.0.0.2", {"app": "api"})
    snap = build_snapshot({c.meta.key: c for c in (first, second, other_namespace, pod)}, version=1)

    service = snap.services[HOST]
    assert [(p.number, p.name) for p in service.ports] == [(80, "http"), (8080, "admin")]  # 80 as api-a has it
    assert service.source == first.meta.key
    assert [(e.address, e.port) for e in service.endpoints[80]] == [("10.0.0.1", 80), ("10.0.0.2", 80)]
    assert [(e.address, e.port) for e in service.endpoints[8080]] == [("10.0.0.2", 8080)]
    assert sorted(i.port.number for i in snap.instances[pod.meta.key]) == [80, 8080]
    assert all(e.address != "10.9.9.9" for eps in service.endpoints.values() for e in eps)


def test_a_workload_selected_twice_for_one_port_is_one_endpoint() -> None:
    entries = [service_entry(n, HOST, (port(80),), selector={"app": "api"}) for n in ("api-a", "api-b")]
    pod = workload("api-1", "10.0.0.2", {"app": "api"})
    snap = build_snapshot({c.meta.key: c for c in (*entries, pod)}, version=1)
    assert [(e.address, e.port) for e in snap.services[HOST].endpoints[80]] == [("10.0.0.2", 80)]
    assert len(snap.instances[pod.meta.key]) == 1


def test_a_route_to_a_port_of_the_second_entry_passes_the_store_checks() -> None:
    ports = "  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n"
    store = ConfigStore()
    store.apply(
        files(
            a_yaml=doc(
                "ServiceEntry", "api-a", f"  hosts: [{HOST}]\n{ports}  - {{number: 80, name: http, protocol: HTTP}}\n"
            )
            + "---\n"
            + doc(
                "ServiceEntry",
                "api-b",
                f"  hosts: [{HOST}]\n{ports}  - {{number: 8080, name: admin, protocol: HTTP}}\n",
            )
            + "---\n"
            + doc(
                "VirtualService",
                "api",
                f"  hosts: [{HOST}]\n  http:\n  - route:\n"
                f"    - destination: {{host: {HOST}, port: {{number: 8080}}}}\n",
            )
        )
    )
    assert rejected(store) == [] and len(store.accepted) == 3
