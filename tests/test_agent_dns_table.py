"""The DNS proxy's lookup table: which names a proxy in a namespace answers, with what, and which it forwards."""

from __future__ import annotations

import dns.rdatatype
import pytest

from agent.dns_table import TTL_SECONDS, ProxyDomain, build_lookup
from tests.dns_builders import name_table

TABLE = name_table(
    {
        "reviews.default.svc.cluster.local": (("240.240.0.5",), "reviews", "default"),
        "db.prod.svc.cluster.local": (("240.240.0.6", "fd00::6"), "db", "prod"),
        "api.example.com": (("240.240.0.7",), "", ""),
        "other.default.svc.remote.local": (("240.240.0.8",), "other", "default"),  # another cluster domain
        "broken.default.svc.cluster.local": (("not-an-ip",), "broken", "default"),
    }
)
SEARCH = ("default.svc.cluster.local", "svc.cluster.local", "cluster.local")
A, AAAA, MX = dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.MX


def answers(qname: str, qtype: int = A, namespace: str = "default") -> list[str] | None:
    lookup = build_lookup(TABLE, ProxyDomain.of(namespace, f"{namespace}.svc.cluster.local", SEARCH))
    answer = lookup.lookup(qname, qtype)
    if answer is None:
        return None
    return [f"{r.name} {dns.rdatatype.to_text(r.rdtype)} {sorted(d.to_text() for d in r)}" for r in answer.rrsets]


@pytest.mark.parametrize(
    ("qname", "namespace", "expected"),
    [
        ("reviews.default.svc.cluster.local.", "default", ["reviews.default.svc.cluster.local. A ['240.240.0.5']"]),
        ("reviews.default.svc.", "default", ["reviews.default.svc. A ['240.240.0.5']"]),
        ("reviews.default.", "default", ["reviews.default. A ['240.240.0.5']"]),
        ("reviews.", "default", ["reviews. A ['240.240.0.5']"]),
        ("ReViEwS", "default", ["reviews. A ['240.240.0.5']"]),
        ("reviews.", "prod", None),  # a short name only in its own namespace
        ("reviews.default.", "prod", ["reviews.default. A ['240.240.0.5']"]),
        ("db.", "prod", ["db. A ['240.240.0.6']"]),
        ("api.example.com.", "default", ["api.example.com. A ['240.240.0.7']"]),
        ("api.", "default", None),  # an external host has no short names
        ("other.default.", "default", None),  # another cluster domain: only its full name
        ("other.default.svc.remote.local.", "default", ["other.default.svc.remote.local. A ['240.240.0.8']"]),
        ("broken.default.svc.cluster.local.", "default", None),  # no valid address: not the mesh's
        ("www.example.org.", "default", None),
    ],
    ids=[
        "fqdn",
        "name-ns-svc",
        "name-ns",
        "short-name",
        "case-insensitive",
        "short-name-other-namespace",
        "name-ns-other-namespace",
        "short-name-own-namespace",
        "external-host",
        "external-no-short-name",
        "other-domain-no-short-names",
        "other-domain-fqdn",
        "no-valid-ip",
        "unknown",
    ],
)
def test_names_a_proxy_answers(qname: str, namespace: str, expected: list[str] | None) -> None:
    assert answers(qname, namespace=namespace) == expected


def test_the_first_search_expansion_is_a_cname_to_the_name_with_its_address() -> None:
    assert answers("api.example.com.default.svc.cluster.local.") == [
        "api.example.com.default.svc.cluster.local. CNAME ['api.example.com.']",
        "api.example.com. A ['240.240.0.7']",
    ]
    assert answers("api.example.com.svc.cluster.local.") is None  # only the first search domain: forwarded


@pytest.mark.parametrize(
    ("qname", "qtype", "expected"),
    [
        ("db.prod.", AAAA, ["db.prod. AAAA ['fd00::6']"]),
        ("reviews.", AAAA, []),  # known, no IPv6 VIP: NODATA, never NXDOMAIN
        ("reviews.", MX, []),
    ],
    ids=["aaaa", "aaaa-nodata", "other-type-nodata"],
)
def test_known_names_answer_every_type(qname: str, qtype: int, expected: list[str]) -> None:
    assert answers(qname, qtype) == expected


def test_records_carry_the_low_ttl() -> None:
    lookup = build_lookup(TABLE, ProxyDomain.of("default", "default.svc.cluster.local"))
    answer = lookup.lookup("reviews", A)
    assert answer is not None and [r.ttl for r in answer.rrsets] == [TTL_SECONDS]


def test_proxy_domain_drops_the_namespace_of_the_node_domain() -> None:
    assert ProxyDomain.of("default", "default.svc.cluster.local").domain == "svc.cluster.local"
    assert ProxyDomain.of("default", "svc.cluster.local").domain == "svc.cluster.local"
