"""Builders for the source-seam tests: decoded config objects (what a Kubernetes source hands over), a store with
a memory and a file source on one sink, and every Envoy resource a proxy gets from a snapshot."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from google.protobuf.message import Message

from pilot.config import FILES, MEMORY, ConfigSink, ConfigStore, MemorySource, StoreChange, object_reference
from pilot.config.types import ConfigKey, ConfigMeta, Protocol, Resolution, ServicePort, WorkloadEntry
from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, GENERATORS, LISTENER_TYPE, ROUTE_TYPE
from pilot.model import Endpoint, MemoryRegistry, MeshSnapshot, Proxy, RegistryState, Service, ServiceInstance
from tests import xdstest


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


def generated_type(type_url: str, proxy: Proxy, snapshot: MeshSnapshot) -> list[Message]:
    """What the xDS registry serves the proxy of one type: its scopes' groups, then its own."""
    generator = GENERATORS[type_url]
    return [
        *(m for scope in generator.scopes(proxy) for m in generator.build_scope(scope, snapshot)),
        *generator.build_proxy(proxy, snapshot),
    ]


def generated(proxy: Proxy, snapshot: MeshSnapshot) -> dict[str, list[Message]]:
    """Every resource of every type the proxy gets, by type URL, through the generator registry."""
    return {type_url: generated_type(type_url, proxy, snapshot) for type_url in GENERATORS}


def validate_generated(tmp_path: Path, proxy: Proxy, snapshot: MeshSnapshot) -> dict[str, list[Message]]:
    """Everything the proxy gets, checked by ``xdstest`` (names, references) and by ``envoy --mode validate``."""
    resources = generated(proxy, snapshot)
    config = {
        "clusters": resources[CLUSTER_TYPE],
        "load_assignments": resources[ENDPOINT_TYPE],
        "listeners": resources[LISTENER_TYPE],
        "routes": resources[ROUTE_TYPE],
    }
    xdstest.check_resources(**config)
    xdstest.envoy_validate(tmp_path, **config)
    return resources


def by_name(messages: Sequence[Any]) -> dict[str, Any]:
    """Named resources (listeners, clusters, route tables) by their name."""
    return {m.name: m for m in messages}


HTTP_9080 = ServicePort(number=9080, name="http", protocol=Protocol.HTTP)


def pod(name: str, address: str) -> WorkloadEntry:
    """A workload as a Kubernetes registry would give it (a Pod), with an object reference for its origin."""
    key = ConfigKey(kind="WorkloadEntry", namespace="default", name=name)
    meta = ConfigMeta(key=key, origin=object_reference("Pod", "default", name, "12"))
    return WorkloadEntry(meta=meta, address=address, labels=MappingProxyType({"app": "ratings"}))


def registry(
    name: str, provider: str, host: str, address: str, version: str = "1", endpoints_version: str = ""
) -> MemoryRegistry:
    """A registry serving ``host`` on port 9080 from one workload at ``address``."""
    workload = pod(f"{name}-{host.split('.')[0]}", address)
    service = Service(
        host=host,
        namespace="default",
        ports=(HTTP_9080,),
        resolution=Resolution.STATIC,
        mesh_internal=True,
        endpoints=MappingProxyType({9080: (Endpoint(address=address, port=9080, workload=workload.meta.key),)}),
        source=ConfigKey(kind="Service", namespace="default", name=host.split(".")[0]),
    )
    instance = ServiceInstance(service=service, port=HTTP_9080, target_port=19080, workload=workload)
    state = RegistryState(
        services=(service,),
        workloads=(workload,),
        instances=MappingProxyType({workload.meta.key: (instance,)}),
        version=version,
        endpoints_version=endpoints_version,
    )
    return MemoryRegistry(name=name, provider=provider, contents=state)
