"""The DNS proxy over real UDP and TCP on loopback, dnspython as the client: mesh names from the table, the rest
forwarded to a stand-in upstream (NXDOMAIN and SERVFAIL passed through), truncation and TCP retry, table swaps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from agent.dns_agent import DnsAgent
from agent.dns_server import DnsProxy, DnsProxySettings
from agent.dns_table import ProxyDomain
from agent.dns_upstream import Upstream
from e2e.dns_world import WorldDns, world_dns
from tests.dns_builders import name_table, start_proxy

TIMEOUT = 2.0
MANY = tuple(f"198.51.100.{i}" for i in range(1, 60))  # an answer larger than 512 bytes
TABLE = name_table(
    {
        "reviews.default.svc.cluster.local": (("240.240.0.5",), "reviews", "default"),
        "db.example.com": (("240.240.0.9",), "", ""),
    }
)


class Running:
    def __init__(self, agent: DnsAgent, world: WorldDns, port: int) -> None:
        self.agent, self.world, self.port = agent, world, port

    async def query(
        self, name: str, rdtype: str = "A", *, tcp: bool = False, edns: bool = False
    ) -> dns.message.Message:
        query = (
            dns.message.make_query(name, rdtype, use_edns=0, payload=4096)
            if edns
            else dns.message.make_query(name, rdtype)
        )
        if tcp:
            return await dns.asyncquery.tcp(query, "127.0.0.1", timeout=TIMEOUT, port=self.port)
        return await dns.asyncquery.udp(query, "127.0.0.1", timeout=TIMEOUT, port=self.port)


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    async with world_dns({"www.example.org.": ("203.0.113.7",), "big.example.org.": MANY}) as world:
        agent = DnsAgent(ProxyDomain.of("default", "default.svc.cluster.local", ("default.svc.cluster.local",)))
        agent.update(TABLE)
        upstreams = (Upstream(host="127.0.0.1", port=world.port),)
        proxy = DnsProxy(agent.current, DnsProxySettings(upstreams=upstreams, upstream_timeout=TIMEOUT))
        port = await start_proxy(proxy)
        try:
            yield Running(agent, world, port)
        finally:
            await proxy.stop()


def addresses(response: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for r in rrset)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("reviews.default.svc.cluster.local.", ["240.240.0.5"]),
        ("reviews.default.", ["240.240.0.5"]),
        ("reviews.", ["240.240.0.5"]),
        ("db.example.com.", ["240.240.0.9"]),
    ],
    ids=["fqdn", "name-ns", "short", "service-entry-host"],
)
async def test_mesh_names_resolve_to_vips_authoritatively(
    running: Running, name: str, expected: list[str], tcp: bool
) -> None:
    response = await running.query(name, tcp=tcp)
    assert (response.rcode(), addresses(response)) == (dns.rcode.NOERROR, expected)
    assert response.flags & dns.flags.AA
    assert running.world.queries == []  # never asked upstream


async def test_a_known_name_without_ipv6_gets_nodata(running: Running) -> None:
    response = await running.query("reviews.", "AAAA")
    assert (response.rcode(), response.answer) == (dns.rcode.NOERROR, [])
    assert running.world.queries == []


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(
    ("name", "rcode", "expected"),
    [
        ("www.example.org.", dns.rcode.NOERROR, ["203.0.113.7"]),
        ("nowhere.example.org.", dns.rcode.NXDOMAIN, []),
        ("broken.example.", dns.rcode.SERVFAIL, []),
    ],
    ids=["answer", "nxdomain", "servfail"],
)
async def test_other_names_are_forwarded_and_the_upstream_answer_passed_through(
    running: Running, name: str, rcode: dns.rcode.Rcode, expected: list[str], tcp: bool
) -> None:
    response = await running.query(name, tcp=tcp)
    assert (response.rcode(), addresses(response)) == (rcode, expected)
    assert not response.flags & dns.flags.AA
    assert running.world.queries == [("tcp" if tcp else "udp", name)]


async def test_a_large_upstream_answer_is_truncated_over_udp_and_whole_over_tcp(running: Running) -> None:
    udp = await running.query("big.example.org.")
    assert udp.flags & dns.flags.TC and udp.answer == []
    tcp = await running.query("big.example.org.", tcp=True)
    assert not tcp.flags & dns.flags.TC and addresses(tcp) == sorted(MANY)
    edns = await running.query("big.example.org.", edns=True)  # a 4096-byte EDNS client takes it over UDP
    assert not edns.flags & dns.flags.TC and addresses(edns) == sorted(MANY)
    assert running.world.queries == [
        ("udp", "big.example.org."),
        ("tcp", "big.example.org."),
        ("udp", "big.example.org."),
    ]


async def test_a_new_name_table_changes_the_answers(running: Running) -> None:
    assert addresses(await running.query("reviews.")) == ["240.240.0.5"]
    running.agent.update(name_table({"reviews.default.svc.cluster.local": (("240.240.9.9",), "reviews", "default")}))
    assert addresses(await running.query("reviews.")) == ["240.240.9.9"]
    assert (await running.query("db.example.com.")).rcode() == dns.rcode.NXDOMAIN  # gone: now forwarded
    assert running.world.queries == [("udp", "db.example.com.")]


async def test_before_the_first_table_every_query_gets_servfail() -> None:
    proxy = DnsProxy(lambda: None, DnsProxySettings())
    port = await start_proxy(proxy)
    try:
        query = dns.message.make_query("reviews.", "A")
        response = await dns.asyncquery.udp(query, "127.0.0.1", timeout=TIMEOUT, port=port)
        assert response.rcode() == dns.rcode.SERVFAIL
    finally:
        await proxy.stop()


async def test_no_upstream_answering_gives_servfail_within_the_timeout() -> None:
    agent = DnsAgent(ProxyDomain.of("default", "default.svc.cluster.local"))
    agent.update(TABLE)
    silent = (Upstream(host="127.0.0.1", port=9),)  # discard: nothing answers there
    proxy = DnsProxy(agent.current, DnsProxySettings(upstreams=silent, upstream_timeout=0.2))
    port = await start_proxy(proxy)
    try:
        query = dns.message.make_query("www.example.org.", "A")
        response = await dns.asyncquery.udp(query, "127.0.0.1", timeout=TIMEOUT, port=port)
        assert response.rcode() == dns.rcode.SERVFAIL
    finally:
        await proxy.stop()


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07garbage", "formerr"),
        (b"\x12\x34", None),
        (b"\x12\x34\x81\x00\x00\x00\x00\x00\x00\x00\x00\x00", None),  # a response: never answered
        (b"\x12\x34\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00", "servfail"),  # no question
    ],
    ids=["bad-question", "short", "response", "no-question"],
)
async def test_malformed_queries(wire: bytes, expected: str | None) -> None:
    agent = DnsAgent(ProxyDomain.of("default", "default.svc.cluster.local"))
    agent.update(TABLE)
    response = await DnsProxy(agent.current, DnsProxySettings()).answer(wire, tcp=False)
    if expected is None:
        assert response is None
        return
    assert response is not None and response[:2] == b"\x12\x34" and response[2] & 0x80
    rcode = response[3] & 0x0F
    assert rcode == {"formerr": dns.rcode.FORMERR, "servfail": dns.rcode.SERVFAIL}[expected]
