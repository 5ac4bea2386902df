"""A route table in VHDS form: the table without its virtual hosts, and each virtual host as a resource of its own.

Envoy's Virtual Host Discovery Service (delta xDS only) lets a route configuration's virtual hosts come one by one:
the table names a ``vhds`` config source, Envoy subscribes to the table's name as a namespace and takes every
``VirtualHost`` named ``<table>/<virtual host>`` (``use_namespace_matching``), merging them into the table. A change
to one VirtualService then moves one virtual host, not the whole table with a virtual host per service.

The split is done on the finished table (EnvoyFilter patches applied), so the virtual hosts Envoy assembles are
exactly the ones the table had. Envoy keys VHDS virtual hosts by their ``name`` and removes them by resource name,
so the resource name and the virtual host's name are the same ``<table>/<name>``.
"""

from __future__ import annotations

from envoy.config.route.v3.route_components_pb2 import VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration, Vhds

from pilot.generate._protos import ads_config_source

__all__ = ["vhds_name", "vhds_route_table"]


def vhds_name(table: str, virtual_host: str) -> str:
    """The VHDS resource name of a table's virtual host (Envoy's ``<route configuration name>/<host entry>``)."""
    return f"{table}/{virtual_host}"


def vhds_route_table(table: RouteConfiguration) -> tuple[RouteConfiguration, list[VirtualHost]]:
    """``table`` without its virtual hosts and pointing at VHDS over ADS, and the virtual hosts renamed for VHDS.

    A table with no virtual hosts, or one whose name has a ``/`` (an EnvoyFilter's), stays whole (``table`` and no
    virtual hosts): Envoy's VHDS init waits for a virtual host of the table, and matches them by the last ``/``."""
    if not table.virtual_hosts or any("/" in host.name for host in table.virtual_hosts):
        return table, []
    stripped = RouteConfiguration()
    stripped.CopyFrom(table)
    del stripped.virtual_hosts[:]
    stripped.vhds.CopyFrom(Vhds(config_source=ads_config_source()))
    virtual_hosts = []
    for original in table.virtual_hosts:
        virtual_host = VirtualHost()
        virtual_host.CopyFrom(original)
        virtual_host.name = vhds_name(table.name, original.name)
        virtual_hosts.append(virtual_host)
    return stripped, virtual_hosts
