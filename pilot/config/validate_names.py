"""Istio's and Kubernetes' name rules: DNS-1123 names, hosts, IP addresses, labels, localities, exportTo.

Each ``*_error`` function returns a message naming the value, or None when the value is fine (Istio's
``ValidateWildcardDomain``, ``labels.IsDNS1123Label``, ``ValidateIPSubnet``, ``validateExportTo`` ...).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pilot.config.errors import quote

if TYPE_CHECKING:
    from pilot.config.validate_common import Fields

__all__ = [
    "cidr_error",
    "dns1123_label_error",
    "dns1123_subdomain_error",
    "export_to",
    "host_error",
    "ip_error",
    "label_errors",
    "locality_error",
    "trust_domain_error",
]

_TRUST_DOMAIN = re.compile(r"^[a-z0-9.\-_]+$")  # what meshplane.identity accepts in a SPIFFE ID
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def dns1123_label_error(value: str, what: str = "name") -> str | None:
    if len(value) <= 63 and _DNS1123_LABEL.match(value):
        return None
    return (
        f"invalid {what} {quote(value)}: must be a DNS-1123 label (at most 63 lowercase letters, digits or '-', "
        "starting and ending with a letter or digit)"
    )


def trust_domain_error(value: str, what: str = "trust domain") -> str | None:
    """Why ``value`` cannot be the SPIFFE trust domain of workload identities, or None."""
    if _TRUST_DOMAIN.match(value):
        return None
    return f"{what} {quote(value)} is not a trust domain (lowercase letters, digits, '.', '-', '_')"


def dns1123_subdomain_error(value: str, what: str = "name") -> str | None:
    if len(value) <= 253 and all(_DNS1123_LABEL.match(part) and len(part) <= 63 for part in value.split(".")):
        return None
    return (
        f"invalid {what} {quote(value)}: must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', "
        "each part starting and ending with a letter or digit)"
    )


def host_error(host: str, *, wildcard: bool = True, short: bool = True) -> str | None:
    """Istio's host rules: DNS labels, an optional ``*`` as the whole first label, no all-numeric top level."""
    if not host:
        return "host must not be empty"
    if len(host) > 255:
        return f"invalid host {quote(host)}: longer than 255 characters"
    if host == "*":
        return None if wildcard else f"invalid host {quote(host)}: a wildcard is not allowed here"
    labels = host.split(".")
    if labels[0] == "*":
        if not wildcard:
            return f"invalid host {quote(host)}: a wildcard is not allowed here"
        labels = labels[1:]
    elif "*" in host:
        return f"invalid host {quote(host)}: a wildcard must be the whole first label, as in '*.example.com'"
    if labels and labels[-1] == "":
        return f"invalid host {quote(host)}: must not end with '.'"
    for label in labels:
        if len(label) > 63 or not _DNS1123_LABEL.match(label):
            return (
                f"invalid host {quote(host)}: {quote(label)} is not a valid DNS label (lowercase letters, digits "
                "and '-')"
            )
    if labels[-1].isdigit():
        return f"invalid host {quote(host)}: the top-level domain {quote(labels[-1])} cannot be all-numeric"
    if not short and len(host.split(".")) == 1:
        example = quote(f"{host}.default.svc.cluster.local")
        return f"invalid host {quote(host)}: must be a fully qualified domain name (like {example})"
    return None


def ip_error(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"{quote(value)} is not a valid IP address"
    return None


def cidr_error(value: str) -> str | None:
    """An IP address or a CIDR block (host bits may be set, as Go's net.ParseCIDR allows)."""
    if "/" not in value:
        return ip_error(value)
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f"{quote(value)} is not a valid CIDR block"
    return None


def label_errors(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """Kubernetes label syntax problems as (label key, message)."""
    out: list[tuple[str, str]] = []
    for key, value in labels.items():
        prefix, slash, name = key.rpartition("/")
        if not name or len(name) > 63 or not _LABEL_NAME.match(name):
            out.append(
                (
                    key,
                    f"invalid label key {quote(key)}: the name part must be at most 63 letters, digits, '-', '_' "
                    "or '.', starting and ending with a letter or digit",
                )
            )
        elif slash and dns1123_subdomain_error(prefix) is not None:
            out.append((key, f"invalid label key {quote(key)}: the prefix must be a DNS-1123 subdomain"))
        if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
            out.append(
                (
                    key,
                    f"invalid label value {quote(value)}: must be at most 63 letters, digits, '-', '_' or '.', "
                    "starting and ending with a letter or digit",
                )
            )
    return out


def locality_error(value: str) -> str | None:
    parts = value.split("/")
    if len(parts) > 3 or any(not part for part in parts):
        return f"invalid locality {quote(value)}: expected region, region/zone or region/zone/subzone"
    return None


def export_to(fields: Fields, namespace: str, *, allow_none: bool) -> tuple[str, ...]:
    """Istio's exportTo: ``.`` (this namespace), ``*`` (all), a namespace, or ``~`` (nobody, ServiceEntry only)."""
    values = fields.strings("exportTo")
    if values is None:
        return ()
    seen: set[str] = set()
    for index, value in enumerate(values):
        path = fields.at("exportTo", index)
        if value == "~" and not allow_none:
            fields.problems.add(path, "'~' (export to nobody) is only allowed in a ServiceEntry")
        elif value not in (".", "*", "~"):
            fields.problems.add_if(path, dns1123_label_error(value, "namespace"))
        key = namespace if value == "." else value
        if key in seen:
            fields.problems.add(path, f"duplicate entry {quote(value)} in exportTo")
        seen.add(key)
    for special, meaning in (("*", "everyone (*)"), ("~", "nobody (~)")):
        if special in values and len(values) > 1:
            fields.report("exportTo", f"cannot export to {meaning} and also list other namespaces")
    return values
