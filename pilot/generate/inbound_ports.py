"""The ports a sidecar accepts inbound and where each one goes: Istio's ``buildInboundChainConfigs``
(``listener_inbound.go``) and ``buildInboundClusters`` (``cluster.go``), shared by the inbound listener, clusters
and route tables so that all three agree.

- Without ``ingress`` in the proxy's Sidecar: one port per distinct service port of the workload
  (``clusters.inbound_instances``), sent to the app at the pod's IP and the service port's target port.
- With it: exactly the Sidecar's ingress ports (a service port not listed goes through the passthrough chains,
  as in Istio). A port's chains, policies and telemetry are those of the workload's service instance whose target
  port is the ingress port's number (Istio's ``findOrCreateService``), else of a service named
  ``<sidecar>.<namespace>``; the port's protocol is the ingress port's. Where the inbound cluster sends is the
  ``defaultEndpoint``: ``127.0.0.1:<port>`` the pod's loopback (not bound to 127.0.0.6: the capture never
  redirects the proxy's loopback traffic), ``0.0.0.0:<port>`` the pod's IP, ``unix://<path>`` a unix socket in
  the pod, unset the connection's original destination (an ORIGINAL_DST cluster, as Istio's).
- ``tls`` (Istio's, with ``ENABLE_TLS_ON_SIDECAR_INGRESS``): the sidecar terminates TLS with the listener's
  certificate files on the port, whose protocol is then the one inside (HTTPS: HTTP, TLS: TCP), only where the
  port's mTLS mode (PeerAuthentication) is DISABLE, as in Istio, which otherwise keeps its mTLS chains; that is
  logged (``sidecar_ingress_tls_ignored``), never weaker than the PeerAuthentication.
- Connection pool (Istio 1.22+): the ingress port's ``connectionPool``, else the Sidecar's
  ``inboundConnectionPool``; either replaces the DestinationRule's (Istio's ``InboundConnectionPoolForPort``, looked
  up by the cluster's port: the target port of a service instance, the ingress port's number).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from pilot.config.types import (
    ConfigMeta,
    ConnectionPool,
    Protocol,
    Resolution,
    ServerTLSSettings,
    ServicePort,
    Sidecar,
)
from pilot.model.mtls import effective_mtls_mode
from pilot.model.types import MeshSnapshot, Proxy, Service, ServiceInstance

__all__ = ["InboundEndpoint", "InboundPort", "inbound_instances", "inbound_ports", "proxy_sidecar"]

log = structlog.get_logger(__name__)

_LOOPBACK = "127.0.0.1"
_TERMINATED = {Protocol.HTTPS: Protocol.HTTP, Protocol.TLS: Protocol.TCP}  # Istio's AfterTLSTermination
_warned: set[tuple[str, ...]] = set()


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundEndpoint:
    """Where an inbound cluster connects: ``address:port``, the unix ``socket``, or (neither) the original
    destination; ``bind_source``: from 127.0.0.6, which the capture lets through to the app unredirected."""

    address: str = ""
    port: int = 0
    socket: str = ""
    bind_source: bool = True

    @property
    def original_destination(self) -> bool:
        return not self.address and not self.socket


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundPort:
    """One port a sidecar accepts: what its chains, policies and routes are built for (``instance``: the
    destination port Envoy sees is ``instance.port.number``), where its cluster sends, and the Sidecar's connection
    pool for it (None: the DestinationRule's, if any)."""

    instance: ServiceInstance
    endpoint: InboundEndpoint
    connection_pool: ConnectionPool | None = None
    tls: ServerTLSSettings | None = None  # terminated by the sidecar with these files (see the module doc)
    # an HTTPS ingress port with tls: its inbound route table exists whatever the mTLS mode, so that RDS does not
    # depend on PeerAuthentication (unused while the mode keeps the port's mTLS chains)
    http_table: bool = False
    from_sidecar: bool = False  # a Sidecar ingress port (policies see its number as written, no target port)


def inbound_instances(proxy: Proxy) -> tuple[ServiceInstance, ...]:
    """One service instance per distinct service port the proxy's workload serves (the first, in model order,
    wins when several services share a port number: as in Istio, one port has one protocol and one app port)."""
    chosen: dict[int, ServiceInstance] = {}
    for instance in proxy.instances:
        first = chosen.setdefault(instance.port.number, instance)
        if first is not instance and (
            first.port.protocol is not instance.port.protocol or first.target_port != instance.target_port
        ):
            log.warning(
                "inbound_port_conflict",
                proxy=proxy.node.id,
                port=instance.port.number,
                used=f"{first.service.host} {first.port.protocol} -> {first.target_port}",
                ignored=f"{instance.service.host} {instance.port.protocol} -> {instance.target_port}",
            )
    return tuple(chosen[number] for number in sorted(chosen))


def proxy_sidecar(proxy: Proxy, snapshot: MeshSnapshot) -> Sidecar | None:
    """The Sidecar that applies to the proxy (None: none does)."""
    return snapshot.sidecars.get(proxy.sidecar)


def inbound_ports(proxy: Proxy, snapshot: MeshSnapshot) -> tuple[InboundPort, ...]:
    """The proxy's inbound ports in port order (see the module doc)."""
    sidecar = proxy_sidecar(proxy, snapshot)
    if sidecar is None or not sidecar.ingress:
        pool = sidecar.inbound_connection_pool if sidecar is not None else None
        return tuple(
            InboundPort(
                instance=instance,
                endpoint=InboundEndpoint(address=proxy.address, port=instance.target_port),
                connection_pool=pool,
                http_table=instance.port.protocol.is_http,
            )
            for instance in inbound_instances(proxy)
        )
    if proxy.workload is None:
        _warn_once(proxy, sidecar)
        return ()
    ports = [_ingress_port(proxy, snapshot, sidecar, index) for index in range(len(sidecar.ingress))]
    return tuple(sorted(ports, key=lambda p: p.instance.port.number))


def _ingress_port(proxy: Proxy, snapshot: MeshSnapshot, sidecar: Sidecar, index: int) -> InboundPort:
    listener = sidecar.ingress[index]
    number = listener.port.number
    workload = proxy.workload
    assert workload is not None  # inbound_ports' check
    tls = listener.tls
    if tls is not None and effective_mtls_mode(snapshot, workload, number) != "DISABLE":
        _warn_tls_ignored(proxy, sidecar, number, effective_mtls_mode(snapshot, workload, number))
        tls = None
    protocol = _TERMINATED.get(listener.port.protocol, listener.port.protocol) if tls else listener.port.protocol
    port = ServicePort(number=number, name=listener.port.name, protocol=protocol)
    service = next((i.service for i in proxy.instances if i.target_port == number), None)
    if service is None:
        service = _sidecar_service(sidecar.meta, port)
    instance = ServiceInstance(service=service, port=port, target_port=number, workload=workload)
    return InboundPort(
        instance=instance,
        endpoint=_endpoint(proxy, listener.default_endpoint, listener.default_socket),
        connection_pool=listener.connection_pool or sidecar.inbound_connection_pool,
        tls=tls,
        http_table=protocol.is_http
        or (listener.tls is not None and _TERMINATED.get(listener.port.protocol, protocol).is_http),
        from_sidecar=True,
    )


def _endpoint(proxy: Proxy, default_endpoint: tuple[str, int] | None, socket: str) -> InboundEndpoint:
    if socket:
        return InboundEndpoint(socket=socket, bind_source=False)
    if default_endpoint is None:
        return InboundEndpoint()
    host, port = default_endpoint
    if host == _LOOPBACK:
        return InboundEndpoint(address=_LOOPBACK, port=port, bind_source=False)
    return InboundEndpoint(address=proxy.address, port=port)  # 0.0.0.0: the instance's IP


def _sidecar_service(meta: ConfigMeta, port: ServicePort) -> Service:
    """Istio's stand-in for an ingress port no service of the workload declares: ``<sidecar>.<namespace>``."""
    key = meta.key
    return Service(
        host=f"{key.name}.{key.namespace}",
        namespace=key.namespace,
        ports=(port,),
        resolution=Resolution.STATIC,
        mesh_internal=True,
        endpoints={},
        source=key,
    )


def _warn_once(proxy: Proxy, sidecar: Sidecar) -> None:
    marker = (proxy.node.id, str(sidecar.meta.key))
    if marker not in _warned:
        _warned.add(marker)
        log.warning(
            "sidecar_ingress_skipped",
            proxy=proxy.node.id,
            sidecar=str(sidecar.meta.key),
            reason="the proxy has no WorkloadEntry: its inbound ports go through the passthrough chains",
        )


def _warn_tls_ignored(proxy: Proxy, sidecar: Sidecar, port: int, mode: str) -> None:
    marker = (proxy.node.id, str(sidecar.meta.key), str(port), mode)
    if marker not in _warned:
        _warned.add(marker)
        log.warning(
            "sidecar_ingress_tls_ignored",
            proxy=proxy.node.id,
            sidecar=str(sidecar.meta.key),
            port=port,
            reason=f"the port's mTLS mode is {mode}: Istio applies ingress tls only where PeerAuthentication "
            "disables mTLS, and keeps its mTLS chains otherwise",
        )
