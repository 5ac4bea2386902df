"""Builders for the sidecar listener tests of policies and telemetry (``test_generate_authz_filters.py``,
``test_generate_access_logs.py``): a service served on the mesh's sidecars, a sidecar with the node metadata its
bootstrap would send, its listeners by port, and the HTTP connection manager of a one-chain listener."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)

from pilot.config.types import ConfigMeta, Protocol, Resolution, ServiceEntry, ServicePort
from pilot.generate import listeners
from pilot.model import MeshSnapshot, Proxy, parse_node_id, resolve_proxy

__all__ = ["MIXER", "inbound_listener", "inbound_service", "listeners_by_port", "only_hcm", "sidecar", "unpack"]

MIXER = {"MESHPLANE_MIXER": "true"}  # the node metadata of a sidecar bootstrapped with --mixer


def inbound_service(
    make_meta: Callable[..., ConfigMeta], name: str, number: int, protocol: Protocol, target: int, *, app: str
) -> ServiceEntry:
    """``<name>.default.svc.cluster.local`` (STATIC, in the mesh) with one port ``number`` -> ``target``, served by
    the workloads labelled ``app``."""
    return ServiceEntry(
        meta=make_meta("ServiceEntry", name),
        hosts=(f"{name}.default.svc.cluster.local",),
        ports=(ServicePort(number=number, name=name, protocol=protocol, target_port=target),),
        location="MESH_INTERNAL",
        resolution=Resolution.STATIC,
        workload_selector=MappingProxyType({"app": app}),
    )


def sidecar(snapshot: MeshSnapshot, workload: str, address: str, metadata: dict[str, str] | None = None) -> Proxy:
    """The sidecar of ``default/<workload>`` at ``address``, resolved against the snapshot."""
    node = parse_node_id(f"sidecar~{address}~{workload}.default~default.svc.cluster.local", "", metadata)
    return resolve_proxy(node, snapshot)


def inbound_listener(proxy: Proxy, snapshot: MeshSnapshot, port: int) -> Listener:
    """virtualInbound with only the chains matching destination ``port`` (and its listener filters): what the
    sidecar serves on that port."""
    [virtual_inbound] = [x for x in listeners.build_listeners(proxy, snapshot) if x.name == listeners.VIRTUAL_INBOUND]
    chains = [c for c in virtual_inbound.filter_chains if c.filter_chain_match.destination_port.value == port]
    del virtual_inbound.filter_chains[:]
    virtual_inbound.filter_chains.extend(chains)
    return virtual_inbound


def listeners_by_port(proxy: Proxy, snapshot: MeshSnapshot) -> dict[str, Listener]:
    """``"outbound:<port>"``: the outbound ``0.0.0.0_<port>`` listener; ``"inbound:<port>"``: what virtualInbound
    serves on that destination port (``inbound_listener``)."""
    built = listeners.build_listeners(proxy, snapshot)
    out = {f"outbound:{x.address.socket_address.port_value}": x for x in built if x.name.startswith("0.0.0.0_")}
    [virtual_inbound] = [x for x in built if x.name == listeners.VIRTUAL_INBOUND]
    for port in sorted({c.filter_chain_match.destination_port.value for c in virtual_inbound.filter_chains}):
        out[f"inbound:{port}"] = inbound_listener(proxy, snapshot, port)
    return out


def unpack(message: Any, packed: Any) -> Any:
    assert packed.Unpack(message), packed.type_url
    return message


def only_hcm(listener: Listener) -> HttpConnectionManager:
    """The HTTP connection manager of a listener with one chain holding only it."""
    [chain] = listener.filter_chains
    [network] = chain.filters
    return unpack(HttpConnectionManager(), network.typed_config)
