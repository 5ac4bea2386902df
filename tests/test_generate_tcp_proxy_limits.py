"""DestinationRule ``connectionPool.tcp.idleTimeout`` and ``maxConnectionDuration`` on a sidecar's outbound
``tcp_proxy`` (Istio ``buildOutboundNetworkFiltersWithSingleDestination`` / ``...WithWeightedClusters``): the
default chain, a weighted split, a single subset destination (its subset's policy), a port-level setting; the
whole sidecar through ``envoy --mode validate``."""

from __future__ import annotations

from pathlib import Path

from pilot.config.parse import parse_config_text
from pilot.model import MeshSnapshot, build_snapshot
from tests.source_builders import validate_generated
from tests.test_generate_gateway import NGINX_TLS_ROUTE, PASSTHROUGH_SERVER, gateway, router
from tests.test_generate_gateway import listeners as gateway_listeners
from tests.test_generate_gateway import mesh as gateway_mesh
from tests.test_generate_l4_routes import ECHO, MESH, VS_ECHO, VS_PINNED, listeners, proxy, tcp_proxy, vip

POOL = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo-pool, namespace: default}
spec:
  host: tcp-echo
  trafficPolicy:
    connectionPool: {tcp: {idleTimeout: 10m, maxConnectionDuration: 1h}}
"""
SUBSET_POLICY = "{name: v1, labels: {version: v1}, trafficPolicy: {connectionPool: {tcp: {idleTimeout: 5s}}}}"
PORT_LEVEL = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo-pool, namespace: default}
spec:
  host: tcp-echo
  trafficPolicy:
    connectionPool: {tcp: {idleTimeout: 10m}}
    portLevelSettings:
    - port: {number: 9000}
      connectionPool: {tcp: {maxConnectionDuration: 30s}}
"""


def snapshot(*documents: str, mesh: str = MESH) -> MeshSnapshot:
    parsed = parse_config_text("\n---\n".join([mesh, *documents]), "mesh.yaml")
    errors = [str(e) for r in parsed.rejected for e in r.errors]
    assert not errors, errors
    return build_snapshot({r.meta.key: r for r in parsed.resources}, version=1)


def echo_proxy(snap: MeshSnapshot) -> tuple[float | None, float | None]:
    [chain] = listeners(snap)[f"{vip(snap, ECHO)}_9000"].filter_chains
    config = tcp_proxy(chain)
    idle = config.idle_timeout.ToTimedelta().total_seconds() if config.HasField("idle_timeout") else None
    longest = config.max_downstream_connection_duration
    return idle, longest.ToTimedelta().total_seconds() if config.HasField(
        "max_downstream_connection_duration"
    ) else None


def test_default_chain_takes_the_rule_tcp_limits() -> None:
    assert echo_proxy(snapshot(POOL)) == (600.0, 3600.0)


def test_without_limits_envoy_keeps_its_defaults() -> None:
    assert echo_proxy(snapshot()) == (None, None)


def test_weighted_split_takes_the_rule_limits() -> None:
    assert echo_proxy(snapshot(POOL, VS_ECHO % "")) == (600.0, 3600.0)


def test_port_level_settings_replace_the_top_level_pool() -> None:
    assert echo_proxy(snapshot(PORT_LEVEL)) == (None, 30.0)  # the port-level pool has no idleTimeout


def test_a_single_subset_destination_takes_its_subset_policy() -> None:
    mesh = MESH.replace("{name: v1, labels: {version: v1}}", SUBSET_POLICY, 1)
    assert mesh != MESH
    snap = snapshot(POOL, VS_PINNED, mesh=mesh)
    chains = listeners(snap)["10.30.0.5_6379"].filter_chains
    [routed] = [c for c in chains if tcp_proxy(c).cluster == f"outbound|9000|v1|{ECHO}"]
    config = tcp_proxy(routed)
    assert config.idle_timeout.ToTimedelta().total_seconds() == 5  # the subset's pool replaces the rule's
    assert not config.HasField("max_downstream_connection_duration")


def test_a_sidecar_with_tcp_limits_is_valid(tmp_path: Path) -> None:
    snap = snapshot(POOL, VS_ECHO % "")
    validate_generated(tmp_path, proxy(snap), snap)


def test_a_gateway_tls_passthrough_route_takes_the_destination_rule_limits(tmp_path: Path) -> None:
    """Istio's gateway TCP and TLS routes build their tcp_proxy as a sidecar's (``buildOutboundNetworkFilters``)."""
    nginx = (
        NGINX_TLS_ROUTE
        + """\
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: my-nginx}
spec:
  host: my-nginx
  trafficPolicy:
    connectionPool: {tcp: {idleTimeout: 90s, maxConnectionDuration: 10m}}
"""
    )
    snap = gateway_mesh(gateway(PASSTHROUGH_SERVER, "mygateway"), nginx)
    router_proxy = router(snap)
    validate_generated(tmp_path, router_proxy, snap)
    [chain] = gateway_listeners(router_proxy, snap)["0.0.0.0_443"].filter_chains
    config = tcp_proxy(chain)
    assert config.cluster == "outbound|443||my-nginx.default.svc.cluster.local"
    assert config.idle_timeout.ToTimedelta().total_seconds() == 90
    assert config.max_downstream_connection_duration.ToTimedelta().total_seconds() == 600
