"""DNS test helpers: name tables as Pilot sends them, and the agent's DNS proxy started on loopback."""

from __future__ import annotations

from collections.abc import Mapping

from agent.dns_server import DnsProxy
from meshplane.nds.v1.nds_pb2 import NameTable

__all__ = ["name_table", "start_proxy"]


def name_table(hosts: Mapping[str, tuple[tuple[str, ...], str, str]]) -> NameTable:
    """host -> (ips, shortname, namespace)."""
    table = NameTable()
    for host, (ips, shortname, namespace) in hosts.items():
        info = table.table[host]
        info.ips.extend(ips)
        info.registry = "External"
        info.shortname, info.namespace = shortname, namespace
    return table


async def start_proxy(proxy: DnsProxy) -> int:
    """Start ``proxy`` on 127.0.0.1 with UDP and TCP on one port; that port."""
    udp, tcp = await proxy.start("127.0.0.1", 0)
    assert udp == tcp, "UDP and TCP got different ports"
    return udp
