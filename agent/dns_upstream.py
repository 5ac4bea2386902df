"""Where names the mesh does not know go: the pod's resolvers, from its ``/etc/resolv.conf`` (or ``--upstream``).

A query is forwarded as the client sent it (same id, same EDNS options) over the transport the client used, so that
a truncated UDP answer reaches the client with TC set and the client's retry over TCP is forwarded over TCP (Istio's
agent does the same). Each resolver gets ``timeout`` seconds, in resolv.conf order; when none answers, the client
gets SERVFAIL (built by the caller).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import structlog

__all__ = [
    "DEFAULT_RESOLV_CONF",
    "DEFAULT_UPSTREAM_TIMEOUT",
    "ResolvConf",
    "Upstream",
    "UpstreamError",
    "forward",
    "parse_upstream",
    "read_resolv_conf",
]

log = structlog.get_logger(__name__)

DEFAULT_RESOLV_CONF = Path("/etc/resolv.conf")
DEFAULT_UPSTREAM_TIMEOUT = 2.0  # seconds per resolver (miekg/dns's default dial and read timeout)


class UpstreamError(ValueError):
    """An upstream resolver address that is not ``IP`` or ``IP:PORT``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvConf:
    nameservers: tuple[Upstream, ...] = ()
    search: tuple[str, ...] = ()


def parse_upstream(value: str) -> Upstream:
    """``10.0.0.10``, ``10.0.0.10:53``, ``[fd00::10]:53`` or ``fd00::10``."""
    host, port = value, 53
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise UpstreamError(f"--upstream: expected IP or IP:PORT, got {value!r}")
        port = _port(rest[1:], value) if rest else 53
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        port = _port(port_text, value)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UpstreamError(f"--upstream: expected an IP address, got {value!r}") from None
    return Upstream(host=host, port=port)


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UpstreamError(f"--upstream: port must be 1-65535, got {value!r}")
    return int(text)


def read_resolv_conf(path: Path = DEFAULT_RESOLV_CONF) -> ResolvConf:
    """The ``nameserver`` and ``search`` lines of a resolv.conf (the last ``search`` line wins, as in glibc);
    a missing file is an empty configuration."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ResolvConf()
    nameservers: list[Upstream] = []
    search: tuple[str, ...] = ()
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                nameservers.append(parse_upstream(fields[1].split("%", 1)[0]))
            except UpstreamError:
                log.warning("resolv.conf nameserver ignored: not an IP address", file=str(path), value=fields[1])
        elif fields and fields[0] in ("search", "domain"):
            search = tuple(fields[1:])
    return ResolvConf(nameservers=tuple(nameservers), search=search)


async def forward(
    query: dns.message.Message, upstreams: Sequence[Upstream], *, tcp: bool, timeout: float
) -> dns.message.Message | None:
    """The first answer of ``upstreams`` (in order) to ``query``, over TCP or UDP as the client asked; None when
    none answered in time."""
    for upstream in upstreams:
        try:
            if tcp:
                return await dns.asyncquery.tcp(query, upstream.host, timeout=timeout, port=upstream.port)
            return await dns.asyncquery.udp(
                query, upstream.host, timeout=timeout, port=upstream.port, ignore_unexpected=True
            )
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            log.info("upstream resolver failed", upstream=str(upstream), tcp=tcp, error=repr(exc))
    return None
