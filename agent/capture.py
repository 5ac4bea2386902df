"""Istio's ``istio-iptables`` as a pure function: capture options in, ``iptables-restore`` input out.

The rules are Istio's (``tools/istio-iptables/pkg/capture``, REDIRECT mode, IPv4), in Istio's order:

- ``nat`` table, chains ``ISTIO_INBOUND``, ``ISTIO_REDIRECT`` (-> the outbound port, 15001), ``ISTIO_IN_REDIRECT``
  (-> the inbound port, 15006), ``ISTIO_OUTPUT`` (and ``ISTIO_OUTPUT_DNS`` with DNS capture);
- inbound: ``PREROUTING -p tcp -j ISTIO_INBOUND``; with ``include_inbound_ports="*"`` every port but the excluded
  ones goes to 15006, otherwise only the listed ports (exclusions then do not matter); 15008 (HBONE) always returns;
- outbound, in ``ISTIO_OUTPUT``: excluded ports return first; ``127.0.0.6`` (the inbound passthrough cluster's
  source address) returns; for each proxy uid then gid: the proxy talking to the pod's own non-127.0.0.1 address
  over loopback is sent to 15006 (app -> sidecar -> its own inbound -> app), other loopback traffic of the app
  returns (the app calling itself), the proxy's own traffic returns (no loop); DNS capture; 127.0.0.1 returns;
  excluded CIDRs return; included ports, then included CIDRs (``*``: everything) go to 15001.
- with DNS capture, ``raw`` table conntrack zones (Istio's): the proxy's queries to resolvers and their answers in
  zone 1, the app's queries and the agent's answers in zone 2. A resolver inside the pod's network namespace (Docker's
  embedded DNS 127.0.0.11, a loopback ``dns_servers`` entry) answers through raw ``OUTPUT``, not ``PREROUTING``, so
  its answers are put in zone 1 there (``_local_resolver_rules``): Docker DNATs 127.0.0.11:53 to a random port of
  its resolver, and only an answer in the query's zone is translated back to 127.0.0.11:53 (in zone 0 it reached the
  agent from the random port and was dropped as an unexpected source).

``capture_rules`` builds the text; ``removal_rules`` builds, from ``iptables-save`` output, the text that removes
exactly meshplane's (Istio's) chains and the jumps to them and nothing else. ``agent.iptables`` runs them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from meshplane.names import DNS_CAPTURE_PORT, INBOUND_CAPTURE_PORT, OUTBOUND_CAPTURE_PORT, PROXY_UID

__all__ = [
    "CHAINS",
    "DEFAULT_EXCLUDE_INBOUND_PORTS",
    "DOCKER_RESOLVER",
    "HBONE_PORT",
    "INBOUND_PASSTHROUGH_SOURCE",
    "CaptureError",
    "CaptureOptions",
    "Wildcard",
    "capture_rules",
    "parse_cidrs",
    "parse_ports",
    "removal_rules",
]

DOCKER_RESOLVER = ipaddress.IPv4Address("127.0.0.11")  # Docker's embedded DNS (user-defined networks), DNAT-ed
HBONE_PORT = 15008  # Istio's tunnel port: never captured
INBOUND_PASSTHROUGH_SOURCE = "127.0.0.6"  # InboundPassthroughCluster binds its upstream connections here
# What Istio's injector passes as -d: Envoy's Prometheus port, the health port and the agent's status port.
DEFAULT_EXCLUDE_INBOUND_PORTS = (15090, 15021, 15020)
MULTIPORT_LIMIT = 15  # ``-m multiport`` takes at most 15 ports per rule

INBOUND, REDIRECT, IN_REDIRECT, OUTPUT, OUTPUT_DNS = (
    "ISTIO_INBOUND",
    "ISTIO_REDIRECT",
    "ISTIO_IN_REDIRECT",
    "ISTIO_OUTPUT",
    "ISTIO_OUTPUT_DNS",
)
CHAINS = (INBOUND, REDIRECT, IN_REDIRECT, OUTPUT, OUTPUT_DNS)  # every chain meshplane may create, in any table
_LOOPBACK = "127.0.0.1/32"

Wildcard = Literal["*"]


class CaptureError(ValueError):
    """A capture option is invalid; the message names the option (flag or annotation)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CaptureOptions:
    """Istio's istio-iptables flags; the defaults are what Istio's injector gives a sidecar."""

    proxy_port: int = OUTBOUND_CAPTURE_PORT  # -p
    inbound_port: int = INBOUND_CAPTURE_PORT  # -z
    proxy_uids: tuple[int, ...] = (PROXY_UID,)  # -u
    proxy_gids: tuple[int, ...] = (PROXY_UID,)  # -g
    include_outbound_cidrs: tuple[ipaddress.IPv4Network, ...] | Wildcard = "*"  # -i ("" = none)
    exclude_outbound_cidrs: tuple[ipaddress.IPv4Network, ...] = ()  # -x
    include_inbound_ports: tuple[int, ...] | Wildcard = "*"  # -b ("" = no inbound capture)
    exclude_inbound_ports: tuple[int, ...] = DEFAULT_EXCLUDE_INBOUND_PORTS  # -d
    exclude_outbound_ports: tuple[int, ...] = ()  # -o
    include_outbound_ports: tuple[int, ...] = ()  # -q
    redirect_dns: bool = False  # --redirect-dns
    dns_port: int = DNS_CAPTURE_PORT
    # With DNS capture: the resolvers whose traffic is captured; empty = every DNS destination (--capture-all-dns)
    dns_servers: tuple[ipaddress.IPv4Address, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("proxy_port", "inbound_port", "dns_port"):
            _check_port(getattr(self, name), name)
        if not self.proxy_uids and not self.proxy_gids:
            raise CaptureError("proxy_uids/proxy_gids: at least one uid or gid must own the proxy's traffic")


def _check_port(port: int, option: str) -> int:
    if not 0 < port < 65536:
        raise CaptureError(f"{option}: port must be 1-65535, got {port}")
    return port


def parse_ports(text: str, *, option: str, wildcard: bool = False) -> tuple[int, ...] | Wildcard:
    """``"9080,9090"`` -> (9080, 9090); ``"*"`` where ``wildcard`` allows it; ``""`` -> ()."""
    text = text.strip()
    if text == "*":
        if not wildcard:
            raise CaptureError(f"{option}: '*' is not allowed here")
        return "*"
    ports: list[int] = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        if not item.isdigit():
            raise CaptureError(f"{option}: {item!r} is not a port number")
        ports.append(_check_port(int(item), option))
    return tuple(dict.fromkeys(ports))


def parse_cidrs(text: str, *, option: str, wildcard: bool = False) -> tuple[ipaddress.IPv4Network, ...] | Wildcard:
    """``"10.0.0.0/8,192.168.1.1"`` -> networks (an address is a /32); ``"*"`` where allowed; ``""`` -> ()."""
    text = text.strip()
    if text == "*":
        if not wildcard:
            raise CaptureError(f"{option}: '*' is not allowed here")
        return "*"
    networks: list[ipaddress.IPv4Network] = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise CaptureError(f"{option}: {item!r} is not a CIDR or IP address") from None
        if not isinstance(network, ipaddress.IPv4Network):
            raise CaptureError(f"{option}: {item!r}: IPv6 capture is not supported by meshplane yet")
        networks.append(network)
    return tuple(dict.fromkeys(networks))


def _port_chunks(ports: Sequence[int]) -> Iterable[list[str]]:
    """``--dport P`` for one port, ``-m multiport --dports A,B,...`` (at most 15 each) for more."""
    for start in range(0, len(ports), MULTIPORT_LIMIT):
        chunk = ports[start : start + MULTIPORT_LIMIT]
        if len(chunk) == 1:
            yield ["--dport", str(chunk[0])]
        else:
            yield ["-m", "multiport", "--dports", ",".join(map(str, chunk))]


def _owners(options: CaptureOptions) -> list[tuple[str, int]]:
    return [("--uid-owner", uid) for uid in options.proxy_uids] + [("--gid-owner", gid) for gid in options.proxy_gids]


def _owner_rules(options: CaptureOptions) -> list[str]:
    """Per proxy uid, then gid: the proxy calling the pod's own address over lo -> inbound; the app on lo -> not
    captured; the proxy's own traffic -> not captured."""
    rules: list[str] = []
    for flag, owner in _owners(options):
        if options.redirect_dns:
            # app -> agent's DNS proxy -> DNS server, never through Envoy's inbound; TCP DNS on lo stays captured
            to_inbound = f"-p tcp -m multiport ! --dports 53,{HBONE_PORT}"
            on_loopback = "-p tcp ! --dport 53 "
        else:
            to_inbound, on_loopback = f"-p tcp ! --dport {HBONE_PORT}", ""
        rules.append(f"-A {OUTPUT} -o lo ! -d {_LOOPBACK} {to_inbound} -m owner {flag} {owner} -j {IN_REDIRECT}")
        if options.include_outbound_cidrs == "*" or not any(
            network.is_loopback for network in options.include_outbound_cidrs
        ):
            rules.append(f"-A {OUTPUT} -o lo {on_loopback}-m owner ! {flag} {owner} -j RETURN")
        rules.append(f"-A {OUTPUT} -m owner {flag} {owner} -j RETURN")
    return rules


def _dns_destinations(options: CaptureOptions) -> list[str]:
    return [f"-d {server}/32 " for server in options.dns_servers] or [""]


def _dns_nat_rules(options: CaptureOptions) -> list[str]:
    """Istio's ISTIO_OUTPUT_DNS: TCP 53 and UDP 53 (except the proxy's own) to the agent's DNS port."""
    port = options.dns_port
    rules = [f"-A {OUTPUT} -j {OUTPUT_DNS}"]
    rules += [f"-A {OUTPUT_DNS} -p tcp --dport 53 {d}-j REDIRECT --to-ports {port}" for d in _dns_destinations(options)]
    rules += [
        f"-A {OUTPUT_DNS} -p udp --dport 53 -m owner {flag} {owner} -j RETURN" for flag, owner in _owners(options)
    ]
    rules += [f"-A {OUTPUT_DNS} -p udp --dport 53 {d}-j REDIRECT --to-port {port}" for d in _dns_destinations(options)]
    return rules


def _local_resolver_rules(options: CaptureOptions) -> list[str]:
    """Answers of resolvers in the pod's own namespace (Docker's, loopback ``dns_servers``) to the proxy's zone 1;
    they leave through raw OUTPUT (first CT target wins: the agent's answers, from 127.0.0.1:15053, are zone 2)."""
    local = dict.fromkeys([DOCKER_RESOLVER, *(server for server in options.dns_servers if server.is_loopback)])
    return [f"-A {OUTPUT_DNS} -o lo -p udp -s {server}/32 -j CT --zone 1" for server in local]


def _dns_raw_rules(options: CaptureOptions) -> list[str]:
    """Istio's conntrack zones: the app's and the proxy's DNS flows to the same server must not share entries."""
    rules = [f"-N {OUTPUT_DNS}", f"-N {INBOUND}", f"-A OUTPUT -j {OUTPUT_DNS}"]
    for flag, owner in _owners(options):
        rules.append(f"-A {OUTPUT_DNS} -p udp --dport 53 -m owner {flag} {owner} -j CT --zone 1")
        rules.append(f"-A {OUTPUT_DNS} -p udp --sport {options.dns_port} -m owner {flag} {owner} -j CT --zone 2")
    rules += _local_resolver_rules(options)
    rules.append(f"-A PREROUTING -j {INBOUND}")
    for destination in _dns_destinations(options):
        rules.append(f"-A {OUTPUT_DNS} -p udp --dport 53 {destination}-j CT --zone 2")
        source = destination.replace("-d ", "-s ")
        rules.append(f"-A {INBOUND} -p udp --sport 53 {source}-j CT --zone 1")
    return rules


def _inbound_rules(options: CaptureOptions) -> list[str]:
    include = options.include_inbound_ports
    if include == ():
        return []
    rules = [f"-A PREROUTING -p tcp -j {INBOUND}"]
    if include == "*":
        excluded = list(options.exclude_inbound_ports)
        rules += [f"-A {INBOUND} -p tcp {' '.join(match)} -j RETURN" for match in _port_chunks(excluded)]
        rules.append(f"-A {INBOUND} -p tcp -j {IN_REDIRECT}")
    else:
        rules += [f"-A {INBOUND} -p tcp --dport {port} -j {IN_REDIRECT}" for port in include]
    return rules


def _outbound_rules(options: CaptureOptions) -> list[str]:
    rules = [f"-A OUTPUT -j {OUTPUT}"]
    for protocol in ("tcp", "udp"):
        for match in _port_chunks(list(options.exclude_outbound_ports)):
            rules.append(f"-A {OUTPUT} -p {protocol} {' '.join(match)} -j RETURN")
    rules.append(f"-A {OUTPUT} -o lo -s {INBOUND_PASSTHROUGH_SOURCE}/32 -j RETURN")
    rules += _owner_rules(options)
    if options.redirect_dns:
        rules += _dns_nat_rules(options)
    rules.append(f"-A {OUTPUT} -d {_LOOPBACK} -j RETURN")
    rules += [f"-A {OUTPUT} -d {network} -j RETURN" for network in options.exclude_outbound_cidrs]
    rules += [f"-A {OUTPUT} -p tcp --dport {port} -j {REDIRECT}" for port in options.include_outbound_ports]
    if options.include_outbound_cidrs == "*":
        rules.append(f"-A {OUTPUT} -j {REDIRECT}")
    else:
        rules += [f"-A {OUTPUT} -d {network} -j {REDIRECT}" for network in options.include_outbound_cidrs]
    return rules


def capture_rules(options: CaptureOptions) -> str:
    """The ``iptables-restore --noflush`` input that installs Istio's capture (REDIRECT mode) for ``options``."""
    chains = [INBOUND, REDIRECT, IN_REDIRECT, OUTPUT] + ([OUTPUT_DNS] if options.redirect_dns else [])
    lines = ["* nat", *(f"-N {chain}" for chain in chains)]
    lines += [
        f"-A {INBOUND} -p tcp --dport {HBONE_PORT} -j RETURN",
        f"-A {REDIRECT} -p tcp -j REDIRECT --to-ports {options.proxy_port}",
        f"-A {IN_REDIRECT} -p tcp -j REDIRECT --to-ports {options.inbound_port}",
        *_inbound_rules(options),
        *_outbound_rules(options),
        "COMMIT",
    ]
    if options.redirect_dns:
        lines += ["* raw", *_dns_raw_rules(options), "COMMIT"]
    return "\n".join(lines) + "\n"


def removal_rules(saved: str) -> str:
    """From ``iptables-save`` output: the ``iptables-restore --noflush`` input that deletes every jump to one of
    ``CHAINS`` from other chains, then flushes and deletes those chains. Empty when there is nothing of ours."""
    tables: dict[str, tuple[list[str], list[str]]] = {}  # table -> (deletions of jumps, our chains present)
    table = ""
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            tables[table] = ([], [])
        elif line.startswith(":") and line[1:].split()[0] in CHAINS:
            tables[table][1].append(line[1:].split()[0])
        elif line.startswith("-A "):
            chain, *rest = line[3:].split()
            if chain not in CHAINS and len(rest) >= 2 and rest[-2] in ("-j", "-g") and rest[-1] in CHAINS:
                tables[table][0].append(f"-D {line[3:]}")
    lines: list[str] = []
    for name, (deletions, chains) in tables.items():
        if deletions or chains:
            lines += [f"* {name}", *deletions, *(f"-F {c}" for c in chains), *(f"-X {c}" for c in chains), "COMMIT"]
    return "\n".join(lines) + "\n" if lines else ""
