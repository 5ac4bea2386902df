"""``freeze_loaded``: the first load's objects leave the collector's reach, and config replaced later is still
freed (the config and the model hold no reference cycles, so reference counting frees them though frozen)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from meshplane.serving import freeze_loaded
from pilot.config.parse import parse_config_text
from pilot.config.store import ConfigStore
from pilot.model import build_snapshot
from tests.test_config_store import doc


def mesh_file(host: str, weight: int) -> str:
    rule = doc("DestinationRule", host, f"  host: {host}\n  subsets:\n  - {{name: v1, labels: {{v: '1'}}}}\n")
    entry = doc(
        "ServiceEntry",
        host,
        f"  hosts: [{host}.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n"
        "  ports: [{number: 80, name: http, protocol: HTTP}]\n",
    )
    route = f"    - destination: {{host: {host}, subset: v1}}\n      weight: {weight}\n"
    route += f"    - destination: {{host: {host}}}\n      weight: {100 - weight}\n"
    service = doc("VirtualService", host, f"  hosts: [{host}]\n  http:\n  - route:\n{route}")
    return "---\n".join((rule, entry, service))


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """What the collector finds, kept for the test to read instead of freed."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_freeze_loaded_moves_what_exists_out_of_the_collectors_reach() -> None:
    before = gc.get_freeze_count()
    loaded = [[index] for index in range(1000)]  # tracked objects, as a loaded config's
    freeze_loaded()
    try:
        assert gc.get_freeze_count() >= before + len(loaded)
    finally:
        gc.unfreeze()


def test_replaced_config_and_snapshots_leave_no_cycles_behind(saved_garbage: list[object]) -> None:
    store = ConfigStore()
    store.apply([parse_config_text(mesh_file(host, 100), f"{host}.yaml") for host in ("a", "b", "c")])
    snapshot = build_snapshot(store.accepted, store.version, None, "cluster.local")
    for weight in (90, 80, 70):
        assert store.apply([parse_config_text(mesh_file("a", weight), "a.yaml")]) is not None
        snapshot = build_snapshot(store.accepted, store.version, snapshot, "cluster.local")
    assert gc.collect() == 0, saved_garbage[:10]
