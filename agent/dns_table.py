"""The DNS proxy's lookup table, built from Pilot's NDS name table (Istio's ``pkg/dns/client/dns.go``).

Built once per name table and swapped whole; a lookup is two dict reads. For each host of the table:

- the host itself (``api.example.com.``);
- for a Kubernetes-style host of the proxy's cluster domain (``shortname`` and ``namespace`` set, the host ending in
  the proxy's ``svc.<suffix>``): ``name.ns.``, ``name.ns.svc.``, and ``name.`` when ``ns`` is the proxy's namespace;
- each of those with the first resolv.conf search domain appended (``reviews.default.svc.cluster.local.default.svc
  .cluster.local.``: the first name an app's resolver tries, ``ndots:5``) as a CNAME to the name itself, so that
  the resolver's search ends after two queries instead of walking every search domain upstream (Istio's trick,
  from CoreDNS's autopath).

A known name gets an authoritative NOERROR: its A or AAAA records, or none (NODATA) for a type it has none of, never
NXDOMAIN (a client asking A and AAAA at once would take NXDOMAIN for the whole name; istio/istio#31250). Names not in
the table are not answered here (``lookup`` returns None): the proxy forwards them upstream.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from meshplane.nds.v1.nds_pb2 import NameTable

__all__ = ["TTL_SECONDS", "Answer", "DnsLookup", "ProxyDomain", "build_lookup"]

TTL_SECONDS = 30  # low, so that a client that honours the TTL soon sees a changed VIP (Istio's value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyDomain:
    """Where the proxy is: its namespace and its cluster domain (``svc.cluster.local``), from its node id's DNS
    domain (``default.svc.cluster.local``), and the resolv.conf search domains its app's resolver appends."""

    namespace: str
    domain: str  # without the namespace: "svc.cluster.local"
    search: tuple[str, ...] = ()

    @classmethod
    def of(cls, namespace: str, dns_domain: str, search: Sequence[str] = ()) -> ProxyDomain:
        labels = dns_domain.strip(".").split(".")
        if labels and labels[0] == namespace:
            labels = labels[1:]
        return cls(namespace=namespace, domain=".".join(labels), search=tuple(search))


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What the proxy answers for a name it knows: the records (CNAME first, then addresses), maybe none."""

    rrsets: tuple[dns.rrset.RRset, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Entry:
    target: str  # the host whose addresses answer (the name itself, or a CNAME's target)
    cname: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsLookup:
    """Lower-case absolute names (``reviews.``) -> what the proxy answers for them."""

    names: Mapping[str, _Entry] = field(default_factory=lambda: MappingProxyType({}))
    v4: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    v6: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def __len__(self) -> int:
        return len(self.names)

    def lookup(self, qname: str, qtype: int) -> Answer | None:
        """The answer for a question, or None when the name is not the mesh's (forward it upstream)."""
        name = qname.lower() if qname.endswith(".") else qname.lower() + "."
        entry = self.names.get(name)
        if entry is None:
            return None
        rrsets: list[dns.rrset.RRset] = []
        if entry.cname:
            rrsets.append(_rrset(name, dns.rdatatype.CNAME, [entry.target]))
        addresses = self.v4 if qtype == dns.rdatatype.A else self.v6 if qtype == dns.rdatatype.AAAA else {}
        ips = list(addresses.get(entry.target, ()))
        if ips:
            random.shuffle(ips)  # DNS load balancing over several VIPs, as kube-dns and Istio's agent do
            rrsets.append(_rrset(entry.target, qtype, ips))
        return Answer(rrsets=tuple(rrsets))


def build_lookup(table: NameTable, proxy: ProxyDomain) -> DnsLookup:
    """The lookup table of a name table for a proxy (see the module's docstring)."""
    names: dict[str, _Entry] = {}
    v4: dict[str, tuple[str, ...]] = {}
    v6: dict[str, tuple[str, ...]] = {}
    for host in sorted(table.table):
        info = table.table[host]
        ipv4, ipv6 = _split(info.ips)
        if not ipv4 and not ipv6:
            continue  # malformed: no address to answer with
        for name in _names_of(host, info, proxy):
            names.setdefault(name, _Entry(target=name, cname=False))
            v4.setdefault(name, ipv4)
            v6.setdefault(name, ipv6)
    if proxy.search:
        first = proxy.search[0].strip(".").lower()
        for name in list(names):
            expanded = f"{name}{first}."
            names.setdefault(expanded, _Entry(target=name, cname=True))
    return DnsLookup(names=MappingProxyType(names), v4=MappingProxyType(v4), v6=MappingProxyType(v6))


def _names_of(host: str, info: NameTable.NameInfo, proxy: ProxyDomain) -> list[str]:
    fqdn = host.lower().rstrip(".") + "."
    names = [fqdn]
    if not info.shortname or not info.namespace or not proxy.domain or not fqdn.endswith(f".{proxy.domain}."):
        return names
    short, namespace = info.shortname.lower(), info.namespace.lower()
    names.append(f"{short}.{namespace}.")
    names.append(f"{short}.{namespace}.{proxy.domain.split('.')[0]}.")  # name.ns.svc
    if namespace == proxy.namespace:
        names.append(f"{short}.")
    return names


def _split(ips: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    v4: list[str] = []
    v6: list[str] = []
    for text in ips:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        (v4 if ip.version == 4 else v6).append(str(ip))
    return tuple(v4), tuple(v6)


def _rrset(name: str, rdtype: int, values: Sequence[str]) -> dns.rrset.RRset:
    """An IN rrset of ``name`` with the TTL above: ``values`` in presentation form (addresses, a CNAME target)."""
    kind = dns.rdatatype.RdataType.make(rdtype)
    rrset = dns.rrset.RRset(dns.name.from_text(name), dns.rdataclass.IN, kind)
    rrset.update_ttl(TTL_SECONDS)
    for value in values:
        rrset.add(dns.rdata.from_text(dns.rdataclass.IN, kind, value))
    return rrset
