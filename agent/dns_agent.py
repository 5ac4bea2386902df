"""``meshplane-agent dns``: the DNS proxy fed by Pilot's name table, until SIGTERM or Ctrl-C.

The proxy reads the current lookup table through one attribute that each name table replaces whole (one reference
assignment on the event loop: a query sees the old table or the new one, never half of each).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

import structlog

from agent.dns_server import DnsProxy, DnsProxySettings
from agent.dns_table import DnsLookup, ProxyDomain, build_lookup
from agent.dns_upstream import (
    DEFAULT_RESOLV_CONF,
    DEFAULT_UPSTREAM_TIMEOUT,
    UpstreamError,
    parse_upstream,
    read_resolv_conf,
)
from agent.nds_client import NdsClient, NdsSettings
from meshplane.names import DNS_CAPTURE_PORT
from meshplane.nds.v1.nds_pb2 import NameTable
from meshplane.serving import stop_on_signals

__all__ = ["AgentError", "DnsAgent", "add_dns_arguments", "run_dns"]

log = structlog.get_logger(__name__)


class AgentError(ValueError):
    """A bad command-line value (printed as ``meshplane-agent: <message>``, exit code 2)."""


class DnsAgent:
    """The proxy's current lookup table, replaced by each name table."""

    def __init__(self, domain: ProxyDomain) -> None:
        self.domain = domain
        self.lookup: DnsLookup | None = None

    def update(self, table: NameTable) -> None:
        self.lookup = build_lookup(table, self.domain)
        log.debug("lookup table updated", names=len(self.lookup))

    def current(self) -> DnsLookup | None:
        return self.lookup


def add_dns_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pilot", required=True, metavar="HOST:PORT", help="Pilot's xDS address")
    parser.add_argument(
        "--node-id",
        required=True,
        metavar="ID",
        help="the sidecar's node id, sidecar~<ip>~<workload>.<namespace>~<namespace>.svc.<domain suffix>",
    )
    parser.add_argument(
        "--listen",
        default=f"127.0.0.1:{DNS_CAPTURE_PORT}",
        metavar="IP:PORT",
        help="UDP and TCP address to serve DNS on (default: %(default)s)",
    )
    parser.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="IP[:PORT]",
        help="a resolver for names outside the mesh (repeatable; default: the nameservers of --resolv-conf)",
    )
    parser.add_argument(
        "--resolv-conf",
        type=Path,
        default=DEFAULT_RESOLV_CONF,
        help="the pod's resolv.conf: upstream resolvers and search domains (default: %(default)s)",
    )
    parser.add_argument(
        "--upstream-timeout",
        type=float,
        default=DEFAULT_UPSTREAM_TIMEOUT,
        metavar="SECONDS",
        help="how long each upstream resolver gets to answer (default: %(default)s)",
    )


def _node(node_id: str) -> tuple[str, str]:
    """(namespace, DNS domain) from a sidecar node id."""
    parts = node_id.split("~")
    workload = parts[2] if len(parts) == 4 else ""
    _, dot, namespace = workload.rpartition(".")
    if len(parts) != 4 or not dot or not namespace or not parts[3]:
        raise AgentError(
            f"--node-id: expected sidecar~<ip>~<workload>.<namespace>~<namespace>.svc.<suffix>, got {node_id!r}"
        )
    return namespace, parts[3]


def _listen(value: str) -> tuple[str, int]:
    try:
        address = parse_upstream(value)
    except UpstreamError as exc:
        raise AgentError(str(exc).replace("--upstream", "--listen")) from None
    return address.host, address.port


async def run_dns(args: argparse.Namespace) -> None:
    namespace, dns_domain = _node(args.node_id)
    host, port = _listen(args.listen)
    resolv = read_resolv_conf(args.resolv_conf)
    try:
        upstreams = tuple(parse_upstream(u) for u in args.upstream) or resolv.nameservers
    except UpstreamError as exc:
        raise AgentError(str(exc)) from None
    if not upstreams:
        log.warning("no upstream resolver: names outside the mesh get SERVFAIL", resolv_conf=str(args.resolv_conf))
    agent = DnsAgent(ProxyDomain.of(namespace, dns_domain, resolv.search))
    proxy = DnsProxy(agent.current, DnsProxySettings(upstreams=upstreams, upstream_timeout=args.upstream_timeout))
    stop = stop_on_signals()
    await proxy.start(host, port)
    log.info("dns agent started", pilot=args.pilot, node=args.node_id, upstreams=[str(u) for u in upstreams])
    client = asyncio.create_task(NdsClient(NdsSettings(pilot=args.pilot, node_id=args.node_id), agent.update).run())
    try:
        await stop.wait()
    finally:
        client.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await client
        await proxy.stop()
