"""WorkloadGroup: validation, and auto-registration of a proxy that connects with AUTO_REGISTER_GROUP metadata
(a WorkloadEntry from the group's template, removed after the grace period once the proxy is gone)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pytest

from pilot.autoregistration import DEFAULT_GRACE_PERIOD, AutoRegistration
from pilot.cli import build_parser
from pilot.config.parse import ParsedFile
from pilot.config.source_memory import MemorySource
from pilot.config.types import ConfigKey, Resource, WorkloadEntry, WorkloadGroup
from pilot.model import parse_node_id

if TYPE_CHECKING:
    from tests.conftest import IstioDocs

GROUP = (
    "metadata:\n  labels: {app: vm, version: v1}\n  annotations: {team: a}\ntemplate:\n  ports: {http: 8080}\n"
    "  serviceAccount: vm-sa\n  labels: {app: template, tier: back}\n"
)


def test_workload_group_is_read(istio: IstioDocs) -> None:
    group = istio.accepted("WorkloadGroup", GROUP)
    assert isinstance(group, WorkloadGroup)
    assert dict(group.labels) == {"app": "vm", "version": "v1"} and dict(group.ports) == {"http": 8080}
    assert group.service_account == "vm-sa" and dict(group.annotations) == {"team": "a"}


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ("metadata: {labels: {app: vm}}\n", "spec.template", "required field is missing"),
        ("template: {address: 10.0.0.1}\n", "spec.template.address", "each connecting proxy's IP is used"),
        ("template: {}\nprobe: {httpGet: {port: 8080}}\n", "spec.probe", "not supported by meshplane yet"),
        ("template: {network: n1}\n", "spec.template.network", "no multi-network support"),
    ],
    ids=["no-template", "template-address", "probe", "network"],
)
def test_workload_group_rejections(istio: IstioDocs, body: str, path: str, message: str) -> None:
    errors = istio.errors("WorkloadGroup", body)
    assert any(f": {path}: " in e and message in e for e in errors), errors


class _Sink:
    def __init__(self) -> None:
        self.published: list[tuple[list[ParsedFile], list[str]]] = []

    def publish(self, source: str, parsed: Iterable[ParsedFile], removed: Iterable[str] = ()) -> None:
        self.published.append((list(parsed), list(removed)))


async def test_a_connecting_proxy_gets_a_workload_entry_until_the_grace_period_after_it_leaves(
    istio: IstioDocs,
) -> None:
    group = istio.accepted("WorkloadGroup", GROUP)
    configs: dict[ConfigKey, Resource] = {group.meta.key: group}
    sink = _Sink()
    registration = AutoRegistration(MemorySource(sink, name="autoregistration"), lambda: configs, grace_period=0.05)  # type: ignore[arg-type]
    node = parse_node_id("sidecar~10.1.2.3~vm-1.ns~ns.svc.cluster.local", metadata={"AUTO_REGISTER_GROUP": "r"})

    registration.connected(node)
    [(parsed, removed)] = sink.published
    [entry] = parsed[0].resources
    assert isinstance(entry, WorkloadEntry) and removed == []
    assert entry.meta.key == ConfigKey(kind="WorkloadEntry", namespace="ns", name="r-10.1.2.3")
    assert entry.address == "10.1.2.3" and dict(entry.ports) == {"http": 8080}
    assert dict(entry.labels) == {"app": "vm", "tier": "back", "version": "v1"}  # metadata.labels over the template's
    assert entry.service_account == "vm-sa"

    registration.disconnected(node)
    registration.connected(node)  # back within the grace period: nothing is removed
    registration.disconnected(node)
    await asyncio.sleep(0.1)
    assert sink.published[-1] == ([], ["WorkloadEntry/ns/r-10.1.2.3"])
    assert sum(1 for _, gone in sink.published if gone) == 1


def test_proxy_without_the_metadata_or_with_an_unknown_group_registers_nothing() -> None:
    sink = _Sink()
    registration = AutoRegistration(MemorySource(sink, name="autoregistration"), dict)  # type: ignore[arg-type]
    registration.connected(parse_node_id("sidecar~10.1.2.3~vm-1.ns~ns.svc.cluster.local"))
    registration.connected(
        parse_node_id("sidecar~10.1.2.3~vm-1.ns~ns.svc.cluster.local", metadata={"AUTO_REGISTER_GROUP": "none"})
    )
    assert sink.published == []


@pytest.mark.parametrize(
    ("argv", "seconds"),
    [([], DEFAULT_GRACE_PERIOD), (["--workload-entry-grace-period", "1.5s"], 1.5)],
    ids=["default-istio-10s", "given"],
)
def test_pilot_takes_the_grace_period_from_its_flag(argv: list[str], seconds: float) -> None:
    args = build_parser().parse_args(["--config-dir", "cfg", *argv])
    assert args.workload_entry_grace_period == seconds
