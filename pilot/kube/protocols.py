"""A Kubernetes Service port's protocol, by Istio's explicit protocol selection
(https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/, and Istio's
``kube.ConvertProtocol``):

1. a UDP or SCTP port (``spec.ports[].protocol``) is not proxied: Istio's sidecars capture TCP only, so the port is
   left out of the mesh's service (``None``) and traffic to it goes to the pods directly, as with Istio;
2. ``appProtocol`` when set (Kubernetes 1.18+), else the port name, as ``<protocol>[-<suffix>]``, case-insensitive:
   ``http``, ``http2``, ``https``, ``grpc``, ``grpc-web``, ``tcp``, ``tls``, ``mongo``, ``mysql``, ``redis``;
   ``appProtocol``'s Kubernetes names ``kubernetes.io/h2c`` (HTTP/2), ``kubernetes.io/ws`` (HTTP) and
   ``kubernetes.io/wss`` (HTTPS) as Istio reads them. An ``appProtocol`` that is not one of these does not fall back
   to the port name (Istio neither);
3. anything else is a port Istio would sniff (HTTP or TCP detected per connection); meshplane does not sniff yet,
   so such a port is TCP (its traffic is proxied as opaque TCP: no HTTP routes, retries or HTTP metrics on it).

``grpc-web`` is served as HTTP/2 (Istio's ``GRPCWeb`` is an HTTP/2 protocol to the upstream); ``udp-`` names on a
TCP port: Istio's protocol UDP, which meshplane cannot serve on a TCP port either: TCP.
"""

from __future__ import annotations

from pilot.config.types import Protocol

__all__ = ["UNPROXIED_L4_PROTOCOLS", "UNSELECTED_PROTOCOL", "port_protocol"]

UNPROXIED_L4_PROTOCOLS = frozenset({"UDP", "SCTP"})
UNSELECTED_PROTOCOL = Protocol.TCP  # what Istio would sniff; meshplane has no protocol sniffing yet

_BY_NAME: dict[str, Protocol] = {
    "http": Protocol.HTTP,
    "http2": Protocol.HTTP2,
    "https": Protocol.HTTPS,
    "grpc": Protocol.GRPC,
    "grpc-web": Protocol.HTTP2,
    "tcp": Protocol.TCP,
    "tls": Protocol.TLS,
    "mongo": Protocol.MONGO,
    "mysql": Protocol.MYSQL,
    "redis": Protocol.REDIS,
    "udp": Protocol.TCP,  # Istio's UDP on a TCP port: nothing to serve it with, proxied as TCP
}
_KUBERNETES_APP_PROTOCOLS: dict[str, Protocol] = {
    "kubernetes.io/h2c": Protocol.HTTP2,
    "kubernetes.io/ws": Protocol.HTTP,
    "kubernetes.io/wss": Protocol.HTTPS,
}


def port_protocol(name: str, l4_protocol: str, app_protocol: str | None) -> Protocol | None:
    """The mesh protocol of a Service port, None for a port the mesh does not proxy (see the module's docstring)."""
    if l4_protocol.upper() in UNPROXIED_L4_PROTOCOLS:
        return None
    if app_protocol is not None:
        if known := _KUBERNETES_APP_PROTOCOLS.get(app_protocol):
            return known
        return _BY_NAME.get(app_protocol.lower(), UNSELECTED_PROTOCOL)
    lowered = name.lower()
    if lowered.startswith("grpc-web"):
        return _BY_NAME["grpc-web"]
    return _BY_NAME.get(lowered.split("-", 1)[0], UNSELECTED_PROTOCOL)
