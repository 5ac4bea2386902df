"""Istio's istio-iptables rules (REDIRECT mode) as ``iptables-restore`` text: the default an injected sidecar gets,
each include/exclude option, DNS capture, the pod annotations and the removal of exactly meshplane's rules."""

from __future__ import annotations

import ipaddress

import pytest

from agent.annotations import capture_options_from_annotations
from agent.capture import CaptureError, CaptureOptions, capture_rules, parse_cidrs, parse_ports, removal_rules

ISTIO_DEFAULT = """\
* nat
-N ISTIO_INBOUND
-N ISTIO_REDIRECT
-N ISTIO_IN_REDIRECT
-N ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp -m multiport --dports 15090,15021,15020 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
"""


def _net(*cidrs: str) -> tuple[ipaddress.IPv4Network, ...]:
    return tuple(ipaddress.IPv4Network(c) for c in cidrs)


def _default_with(old: str, *new: str) -> str:
    """Istio's default text with the line ``old`` replaced by ``new`` (none: removed)."""
    assert old + "\n" in ISTIO_DEFAULT, old
    return ISTIO_DEFAULT.replace(old + "\n", "".join(line + "\n" for line in new))


_INBOUND_EXCLUDES = "-A ISTIO_INBOUND -p tcp -m multiport --dports 15090,15021,15020 -j RETURN"
_INBOUND_ALL = "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT"
_OUTBOUND_ALL = "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"
_LOCALHOST = "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN"
_PASSTHROUGH = "-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (CaptureOptions(), ISTIO_DEFAULT),
        (
            CaptureOptions(proxy_port=16001, inbound_port=16006),
            ISTIO_DEFAULT.replace("--to-ports 15001", "--to-ports 16001").replace(
                "--to-ports 15006", "--to-ports 16006"
            ),
        ),
        (
            CaptureOptions(include_outbound_cidrs=_net("10.0.0.0/8", "172.16.0.0/12")),
            _default_with(
                _OUTBOUND_ALL,
                "-A ISTIO_OUTPUT -d 10.0.0.0/8 -j ISTIO_REDIRECT",
                "-A ISTIO_OUTPUT -d 172.16.0.0/12 -j ISTIO_REDIRECT",
            ),
        ),
        (CaptureOptions(include_outbound_cidrs=()), _default_with(_OUTBOUND_ALL)),
        (
            CaptureOptions(exclude_outbound_cidrs=_net("10.96.0.0/12", "1.2.3.4/32")),
            _default_with(
                _LOCALHOST,
                _LOCALHOST,
                "-A ISTIO_OUTPUT -d 10.96.0.0/12 -j RETURN",
                "-A ISTIO_OUTPUT -d 1.2.3.4/32 -j RETURN",
            ),
        ),
        (
            CaptureOptions(include_inbound_ports=(9080, 9090)),
            _default_with(
                _INBOUND_EXCLUDES,
                "-A ISTIO_INBOUND -p tcp --dport 9080 -j ISTIO_IN_REDIRECT",
                "-A ISTIO_INBOUND -p tcp --dport 9090 -j ISTIO_IN_REDIRECT",
            ).replace(_INBOUND_ALL + "\n", ""),
        ),
        (
            CaptureOptions(include_inbound_ports=()),
            _default_with("-A PREROUTING -p tcp -j ISTIO_INBOUND")
            .replace(_INBOUND_EXCLUDES + "\n", "")
            .replace(_INBOUND_ALL + "\n", ""),
        ),
        (
            CaptureOptions(exclude_inbound_ports=(22,)),
            _default_with(_INBOUND_EXCLUDES, "-A ISTIO_INBOUND -p tcp --dport 22 -j RETURN"),
        ),
        (
            CaptureOptions(exclude_inbound_ports=tuple(range(1, 18))),
            _default_with(
                _INBOUND_EXCLUDES,
                "-A ISTIO_INBOUND -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 -j RETURN",
                "-A ISTIO_INBOUND -p tcp -m multiport --dports 16,17 -j RETURN",
            ),
        ),
        (
            CaptureOptions(exclude_outbound_ports=(22, 80, 443)),
            _default_with(
                _PASSTHROUGH,
                "-A ISTIO_OUTPUT -p tcp -m multiport --dports 22,80,443 -j RETURN",
                "-A ISTIO_OUTPUT -p udp -m multiport --dports 22,80,443 -j RETURN",
                _PASSTHROUGH,
            ),
        ),
        (
            CaptureOptions(include_outbound_ports=(32000,), include_outbound_cidrs=()),
            _default_with(_OUTBOUND_ALL, "-A ISTIO_OUTPUT -p tcp --dport 32000 -j ISTIO_REDIRECT"),
        ),
        (
            CaptureOptions(proxy_uids=(1337, 1338), proxy_gids=()),
            ISTIO_DEFAULT.replace(
                "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 "
                "-j ISTIO_IN_REDIRECT\n"
                "-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN\n"
                "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN\n",
                "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1338 "
                "-j ISTIO_IN_REDIRECT\n"
                "-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1338 -j RETURN\n"
                "-A ISTIO_OUTPUT -m owner --uid-owner 1338 -j RETURN\n",
            ),
        ),
        (  # loopback explicitly included: the app's own loopback traffic is captured too (Istio)
            CaptureOptions(include_outbound_cidrs=_net("127.0.0.0/8")),
            _default_with(_OUTBOUND_ALL, "-A ISTIO_OUTPUT -d 127.0.0.0/8 -j ISTIO_REDIRECT")
            .replace("-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN\n", "")
            .replace("-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN\n", ""),
        ),
    ],
    ids=[
        "istio-default",
        "ports-p-z",
        "include-cidrs-i",
        "include-cidrs-empty",
        "exclude-cidrs-x",
        "include-inbound-ports-b",
        "no-inbound-capture",
        "exclude-inbound-ports-d",
        "exclude-inbound-ports-multiport-chunks",
        "exclude-outbound-ports-o",
        "include-outbound-ports-q",
        "uids-only",
        "loopback-included",
    ],
)
def test_capture_rules(options: CaptureOptions, expected: str) -> None:
    assert capture_rules(options) == expected


def test_dns_capture_rules() -> None:
    """Istio's --redirect-dns with --capture-all-dns: TCP and UDP 53 of everyone but the proxy to 15053."""
    text = capture_rules(CaptureOptions(redirect_dns=True, proxy_gids=()))
    assert text == (
        "* nat\n-N ISTIO_INBOUND\n-N ISTIO_REDIRECT\n-N ISTIO_IN_REDIRECT\n-N ISTIO_OUTPUT\n-N ISTIO_OUTPUT_DNS\n"
        "-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN\n"
        "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n"
        "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006\n"
        "-A PREROUTING -p tcp -j ISTIO_INBOUND\n"
        f"{_INBOUND_EXCLUDES}\n{_INBOUND_ALL}\n"
        "-A OUTPUT -j ISTIO_OUTPUT\n"
        f"{_PASSTHROUGH}\n"
        "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m multiport ! --dports 53,15008 -m owner --uid-owner 1337 "
        "-j ISTIO_IN_REDIRECT\n"
        "-A ISTIO_OUTPUT -o lo -p tcp ! --dport 53 -m owner ! --uid-owner 1337 -j RETURN\n"
        "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
        "-A ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS\n"
        "-A ISTIO_OUTPUT_DNS -p tcp --dport 53 -j REDIRECT --to-ports 15053\n"
        "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --uid-owner 1337 -j RETURN\n"
        "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j REDIRECT --to-port 15053\n"
        f"{_LOCALHOST}\n{_OUTBOUND_ALL}\nCOMMIT\n"
        "* raw\n-N ISTIO_OUTPUT_DNS\n-N ISTIO_INBOUND\n-A OUTPUT -j ISTIO_OUTPUT_DNS\n"
        "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --uid-owner 1337 -j CT --zone 1\n"
        "-A ISTIO_OUTPUT_DNS -p udp --sport 15053 -m owner --uid-owner 1337 -j CT --zone 2\n"
        "-A ISTIO_OUTPUT_DNS -o lo -p udp -s 127.0.0.11/32 -j CT --zone 1\n"
        "-A PREROUTING -j ISTIO_INBOUND\n"
        "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j CT --zone 2\n"
        "-A ISTIO_INBOUND -p udp --sport 53 -j CT --zone 1\nCOMMIT\n"
    )


def test_dns_capture_of_named_servers_only() -> None:
    text = capture_rules(CaptureOptions(redirect_dns=True, dns_servers=(ipaddress.IPv4Address("10.89.0.1"),)))
    assert "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -d 10.89.0.1/32 -j REDIRECT --to-port 15053\n" in text
    assert "-A ISTIO_OUTPUT_DNS -p tcp --dport 53 -d 10.89.0.1/32 -j REDIRECT --to-ports 15053\n" in text
    assert "-A ISTIO_INBOUND -p udp --sport 53 -s 10.89.0.1/32 -j CT --zone 1\n" in text


@pytest.mark.parametrize(
    ("servers", "local"),
    [
        ((), ["127.0.0.11"]),
        (("10.89.0.1",), ["127.0.0.11"]),
        (("127.0.0.53", "10.89.0.1"), ["127.0.0.11", "127.0.0.53"]),
        (("127.0.0.11",), ["127.0.0.11"]),
    ],
    ids=["capture-all-docker", "remote-server", "loopback-server", "docker-named"],
)
def test_dns_answers_of_resolvers_in_the_pod_join_the_proxys_zone(servers: tuple[str, ...], local: list[str]) -> None:
    """Docker's embedded DNS answers from inside the pod (raw OUTPUT) and from its DNAT port: in zone 1, the zone of
    the proxy's query, so that conntrack translates the answer back to 127.0.0.11:53 (issue: zone 0 dropped it)."""
    options = CaptureOptions(redirect_dns=True, dns_servers=tuple(map(ipaddress.IPv4Address, servers)))
    raw = capture_rules(options).split("* raw\n")[1].splitlines()
    zoned = [line for line in raw if line.startswith("-A ISTIO_OUTPUT_DNS -o lo")]
    assert zoned == [f"-A ISTIO_OUTPUT_DNS -o lo -p udp -s {server}/32 -j CT --zone 1" for server in local]
    # after the agent's own answers (from 127.0.0.1:15053, zone 2; the first CT target wins), before the app's rules
    agent_answers = raw.index("-A ISTIO_OUTPUT_DNS -p udp --sport 15053 -m owner --gid-owner 1337 -j CT --zone 2")
    app_queries = next(i for i, line in enumerate(raw) if "--dport 53 " in line and line.endswith("-j CT --zone 2"))
    assert "--uid-owner" not in raw[app_queries]
    assert agent_answers < raw.index(zoned[0]) < app_queries


def test_no_resolver_zones_without_dns_capture() -> None:
    assert "CT --zone" not in capture_rules(CaptureOptions())


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, CaptureOptions()),
        ({"sidecar.istio.io/inject": "true"}, CaptureOptions()),
        (
            {"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8, 192.168.1.1"},
            CaptureOptions(include_outbound_cidrs=_net("10.0.0.0/8", "192.168.1.1/32")),
        ),
        ({"traffic.sidecar.istio.io/includeOutboundIPRanges": "*"}, CaptureOptions()),
        ({"traffic.sidecar.istio.io/includeOutboundIPRanges": ""}, CaptureOptions(include_outbound_cidrs=())),
        (
            {"traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.96.0.0/12"},
            CaptureOptions(exclude_outbound_cidrs=_net("10.96.0.0/12")),
        ),
        ({"traffic.sidecar.istio.io/includeInboundPorts": "9080"}, CaptureOptions(include_inbound_ports=(9080,))),
        ({"traffic.sidecar.istio.io/includeInboundPorts": ""}, CaptureOptions(include_inbound_ports=())),
        (
            {"traffic.sidecar.istio.io/excludeInboundPorts": "22,15021"},
            CaptureOptions(exclude_inbound_ports=(15090, 15021, 15020, 22)),
        ),
        ({"traffic.sidecar.istio.io/excludeOutboundPorts": "3306"}, CaptureOptions(exclude_outbound_ports=(3306,))),
        ({"traffic.sidecar.istio.io/includeOutboundPorts": "8443"}, CaptureOptions(include_outbound_ports=(8443,))),
    ],
    ids=[
        "none",
        "other-prefix",
        "include-cidrs",
        "include-cidrs-wildcard",
        "include-cidrs-empty",
        "exclude-cidrs",
        "include-inbound",
        "include-inbound-empty",
        "exclude-inbound-adds-to-default",
        "exclude-outbound-ports",
        "include-outbound-ports",
    ],
)
def test_annotations_map_to_istio_flags(annotations: dict[str, str], expected: CaptureOptions) -> None:
    assert capture_options_from_annotations(annotations) == expected


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        (
            {"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/33"},
            "traffic.sidecar.istio.io/includeOutboundIPRanges: '10.0.0.0/33' is not a CIDR or IP address",
        ),
        (
            {"traffic.sidecar.istio.io/excludeOutboundIPRanges": "*"},
            "traffic.sidecar.istio.io/excludeOutboundIPRanges: '*' is not allowed here",
        ),
        (
            {"traffic.sidecar.istio.io/excludeInboundPorts": "http"},
            "traffic.sidecar.istio.io/excludeInboundPorts: 'http' is not a port number",
        ),
        (
            {"traffic.sidecar.istio.io/excludeOutboundPorts": "70000"},
            "traffic.sidecar.istio.io/excludeOutboundPorts: port must be 1-65535, got 70000",
        ),
        (
            {"traffic.sidecar.istio.io/excludeInterfaces": "eth1"},
            "traffic.sidecar.istio.io/excludeInterfaces: not supported by meshplane yet",
        ),
        (
            {"traffic.sidecar.istio.io/includeOutboundIPRanges": "fd00::/8"},
            "traffic.sidecar.istio.io/includeOutboundIPRanges: 'fd00::/8': "
            "IPv6 capture is not supported by meshplane yet",
        ),
    ],
    ids=["bad-cidr", "wildcard-not-allowed", "bad-port", "port-range", "unknown-annotation", "ipv6"],
)
def test_bad_annotations_are_rejected(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(CaptureError) as error:
        capture_options_from_annotations(annotations)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", ()), ("*", "*"), ("80, 80,443", (80, 443))],
    ids=["empty", "wildcard", "deduplicated"],
)
def test_parse_ports(text: str, expected: object) -> None:
    assert parse_ports(text, option="-b", wildcard=True) == expected


def test_parse_cidrs_makes_addresses_host_networks() -> None:
    assert parse_cidrs("10.1.2.3", option="-x") == _net("10.1.2.3/32")


SAVED = """\
# Generated by iptables-save v1.8.9 (nf_tables)
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:ISTIO_OUTPUT_DNS - [0:0]
-A OUTPUT -j ISTIO_OUTPUT_DNS
-A ISTIO_OUTPUT_DNS -p udp -m udp --dport 53 -j CT --zone 2
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:ISTIO_INBOUND - [0:0]
:ISTIO_OUTPUT - [0:0]
:OTHER - [0:0]
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A PREROUTING -p tcp -j OTHER
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -j RETURN
COMMIT
*filter
:INPUT ACCEPT [0:0]
-A INPUT -j ACCEPT
COMMIT
"""


def test_removal_deletes_only_meshplane_chains_and_jumps() -> None:
    assert removal_rules(SAVED) == (
        "* raw\n-D OUTPUT -j ISTIO_OUTPUT_DNS\n-F ISTIO_OUTPUT_DNS\n-X ISTIO_OUTPUT_DNS\nCOMMIT\n"
        "* nat\n-D PREROUTING -p tcp -j ISTIO_INBOUND\n-D OUTPUT -j ISTIO_OUTPUT\n"
        "-F ISTIO_INBOUND\n-F ISTIO_OUTPUT\n-X ISTIO_INBOUND\n-X ISTIO_OUTPUT\nCOMMIT\n"
    )


def test_removal_of_nothing_is_empty() -> None:
    assert removal_rules("*nat\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n") == ""


def test_options_are_checked() -> None:
    with pytest.raises(CaptureError, match="proxy_port: port must be 1-65535, got 0"):
        CaptureOptions(proxy_port=0)
