"""Builders for the source-seam tests: decoded config objects (what a Kubernetes source hands over), a store with
a memory and a file source on one sink, and every Envoy resource a proxy gets from a snapshot."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from pilot.config import FILES, MEMORY, ConfigSink, ConfigStore, MemorySource, StoreChange
from pilot.generate.registry import GENERATORS
from pilot.model import MeshSnapshot, Proxy


def config_object(
    kind: str, name: str, spec: Mapping[str, Any], namespace: str = "default", resource_version: str = ""
) -> dict[str, Any]:
    """An already-decoded Istio object (``networking.istio.io/v1``, or ``security.istio.io/v1`` for policies)."""
    group = (
        "security.istio.io/v1" if kind in ("PeerAuthentication", "AuthorizationPolicy") else "networking.istio.io/v1"
    )
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {"apiVersion": group, "kind": kind, "metadata": metadata, "spec": dict(spec)}


@dataclass
class SeamUnderTest:
    """A store fed by a memory source (first: it wins duplicates) and a file source, through one sink."""

    store: ConfigStore
    sink: ConfigSink
    memory: MemorySource
    changes: list[StoreChange] = field(default_factory=list)


def memory_and_files(
    *sources: str,
    on_change: Callable[[ConfigStore, StoreChange], None] | None = None,
    on_rejected: Callable[[str], None] | None = None,
) -> SeamUnderTest:
    """``sources`` ranks the store's sources (default: memory, then files); every change is recorded, and also
    handed to ``on_change`` with the store."""
    store = ConfigStore(sources=sources or (MEMORY, FILES))
    changes: list[StoreChange] = []

    def changed(change: StoreChange) -> None:
        changes.append(change)
        if on_change is not None:
            on_change(store, change)

    sink = ConfigSink(store, changed, on_rejected=on_rejected)
    return SeamUnderTest(store=store, sink=sink, memory=MemorySource(sink), changes=changes)


def generated(proxy: Proxy, snapshot: MeshSnapshot) -> dict[str, list[Message]]:
    """Every resource of every type the proxy gets, by type URL, through the generator registry."""
    return {
        type_url: [
            *(m for scope in generator.scopes(proxy) for m in generator.build_scope(scope, snapshot)),
            *generator.build_proxy(proxy, snapshot),
        ]
        for type_url, generator in GENERATORS.items()
    }
