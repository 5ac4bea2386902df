"""A Kubernetes Service port's protocol: appProtocol, Istio's port-name prefixes, TCP otherwise; UDP not proxied."""

from __future__ import annotations

import pytest

from pilot.config.types import Protocol
from pilot.kube.protocols import port_protocol

CASES = [
    # (name, L4 protocol, appProtocol) -> protocol
    ("http", "TCP", None, Protocol.HTTP),
    ("http-web", "TCP", None, Protocol.HTTP),
    ("HTTP-Web", "TCP", None, Protocol.HTTP),
    ("http2", "TCP", None, Protocol.HTTP2),
    ("http2-api", "TCP", None, Protocol.HTTP2),
    ("https", "TCP", None, Protocol.HTTPS),
    ("grpc", "TCP", None, Protocol.GRPC),
    ("grpc-backend", "TCP", None, Protocol.GRPC),
    ("grpc-web", "TCP", None, Protocol.HTTP2),
    ("grpc-web-ui", "TCP", None, Protocol.HTTP2),
    ("tcp-db", "TCP", None, Protocol.TCP),
    ("tls-passthrough", "TCP", None, Protocol.TLS),
    ("mongo", "TCP", None, Protocol.MONGO),
    ("mysql-primary", "TCP", None, Protocol.MYSQL),
    ("redis", "TCP", None, Protocol.REDIS),
    ("udp-on-tcp", "TCP", None, Protocol.TCP),
    ("", "TCP", None, Protocol.TCP),  # unnamed: Istio sniffs, meshplane proxies TCP
    ("web", "TCP", None, Protocol.TCP),
    ("httpweb", "TCP", None, Protocol.TCP),  # not <protocol>[-<suffix>]
    ("foo-http", "TCP", None, Protocol.TCP),
    ("tcp", "TCP", "http", Protocol.HTTP),  # appProtocol wins over the name
    ("web", "TCP", "grpc", Protocol.GRPC),
    ("web", "TCP", "HTTPS", Protocol.HTTPS),
    ("web", "TCP", "kubernetes.io/h2c", Protocol.HTTP2),
    ("web", "TCP", "kubernetes.io/ws", Protocol.HTTP),
    ("web", "TCP", "kubernetes.io/wss", Protocol.HTTPS),
    ("http", "TCP", "nats.io/client", Protocol.TCP),  # an unknown appProtocol: no fallback to the name
    ("dns", "UDP", None, None),
    ("http", "UDP", None, None),
    ("http", "SCTP", "http", None),
]


@pytest.mark.parametrize(
    ("name", "l4", "app_protocol", "expected"),
    CASES,
    ids=[f"{name or 'unnamed'}/{l4}/{app or '-'}" for name, l4, app, _ in CASES],
)
def test_port_protocol(name: str, l4: str, app_protocol: str | None, expected: Protocol | None) -> None:
    assert port_protocol(name, l4, app_protocol) is expected
