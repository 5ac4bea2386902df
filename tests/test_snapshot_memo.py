"""What generators derive from a snapshot is memoized on that snapshot alone (``pilot.model.memo``): every proxy of
an egress scope shares one scan of the services, a snapshot made from another starts afresh, and a computation may
ask the memo for something else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType

from pilot.config.types import ConfigMeta, Protocol, Resolution, ServiceEntry, ServicePort
from pilot.generate import listeners
from pilot.model import MeshSnapshot, Proxy
from pilot.model.memo import SnapshotMemo


def _service(make_meta: Callable[..., ConfigMeta], name: str, port: int, protocol: Protocol) -> ServiceEntry:
    return ServiceEntry(
        meta=make_meta("ServiceEntry", name),
        hosts=(f"{name}.default.svc.cluster.local",),
        addresses=(),
        ports=(ServicePort(number=port, name=protocol.value.lower(), protocol=protocol, target_port=port),),
        resolution=Resolution.STATIC,
    )


def _names(proxy: Proxy, snapshot: MeshSnapshot) -> list[str]:
    return [listener.name for listener in listeners.build_outbound_service_listeners(proxy, snapshot)]


def test_proxies_of_one_scope_share_the_scan_and_a_copied_snapshot_scans_its_own_services(
    make_meta: Callable[..., ConfigMeta],
    mesh_snapshot: Callable[..., MeshSnapshot],
    sidecar_proxy: Callable[..., Proxy],
) -> None:
    snapshot = mesh_snapshot(
        _service(make_meta, "web", 8080, Protocol.HTTP), _service(make_meta, "db", 5432, Protocol.TCP)
    )
    first, second = sidecar_proxy(snapshot, "a", ip="10.0.0.1"), sidecar_proxy(snapshot, "b", ip="10.0.0.2")
    assert _names(first, snapshot) == _names(second, snapshot)
    assert "0.0.0.0_8080" in _names(first, snapshot)
    without_web = replace(
        snapshot,
        services=MappingProxyType({host: s for host, s in snapshot.services.items() if not host.startswith("web.")}),
    )
    assert without_web.derived is not snapshot.derived
    assert "0.0.0.0_8080" not in _names(first, without_web)  # not the copied snapshot's scan
    assert "0.0.0.0_8080" in _names(first, snapshot)


def test_a_value_is_computed_once_even_when_none_and_a_computation_may_use_the_memo() -> None:
    memo = SnapshotMemo()
    calls: list[str] = []

    def nothing() -> None:
        calls.append("nothing")

    assert memo.get("nothing", nothing) is None
    assert memo.get("nothing", nothing) is None
    assert memo.get("outer", lambda: ("outer", memo.get("inner", lambda: 1))) == ("outer", 1)
    assert calls == ["nothing"]
