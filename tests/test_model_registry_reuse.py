"""A snapshot built for a change that leaves every ServiceEntry and WorkloadEntry as it was reuses the previous
snapshot's services, instances and VIPs (the same objects: the registry state and its aggregate are kept while
their inputs are the same objects); any change of an entry or a workload builds them anew, equal to a fresh build."""

from __future__ import annotations

from pilot.config.parse import parse_config_text
from pilot.config.store import ConfigStore
from pilot.model import MeshSnapshot, build_snapshot
from tests.test_config_store import doc


def entry(host: str) -> str:
    spec = (
        f"  hosts: [{host}.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n"
        f"  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  workloadSelector: {{labels: {{app: {host}}}}}\n"
    )
    return doc("ServiceEntry", host, spec)


def workload(host: str, address: str) -> str:
    return doc("WorkloadEntry", host, f"  address: {address}\n  labels: {{app: {host}}}\n")


def service(host: str, weight: int) -> str:
    spec = f"  hosts: [{host}]\n  http:\n  - route:\n    - destination: {{host: {host}}}\n      weight: {weight}\n"
    return doc("VirtualService", host, spec)


def rebuilt(store: ConfigStore, previous: MeshSnapshot) -> tuple[MeshSnapshot, MeshSnapshot]:
    """The snapshot built on ``previous``, and one built from nothing."""
    again = build_snapshot(store.accepted, store.version, previous, "cluster.local")
    return again, build_snapshot(store.accepted, store.version, None, "cluster.local")


def test_a_virtual_service_change_reuses_services_and_vips_an_entry_change_does_not() -> None:
    store = ConfigStore()
    texts = {host: (entry(host), workload(host, f"127.0.0.{i + 2}"), service(host, 100)) for i, host in enumerate("ab")}
    store.apply([parse_config_text("---\n".join(parts), f"{host}.yaml") for host, parts in texts.items()])
    first = build_snapshot(store.accepted, store.version, None, "cluster.local")

    store.apply([parse_config_text("---\n".join((*texts["a"][:2], service("a", 90))), "a.yaml")])
    second, fresh = rebuilt(store, first)
    assert second.services is first.services and second.vips is first.vips and second.instances is first.instances
    assert (second.services, second.vips, second.instances) == (fresh.services, fresh.vips, fresh.instances)
    assert "ServiceEntry" not in second.changed_kinds

    store.apply(
        [parse_config_text("---\n".join((texts["a"][0], workload("a", "127.0.0.9"), service("a", 90))), "a.yaml")]
    )
    third, fresh = rebuilt(store, second)
    assert third.services is not second.services
    assert (third.services, third.vips, third.instances) == (fresh.services, fresh.vips, fresh.instances)
    assert "WorkloadEntry" in third.changed_kinds
    addresses = {e.address for es in third.services["a.bookinfo.svc.cluster.local"].endpoints.values() for e in es}
    assert addresses == {"127.0.0.9"}
