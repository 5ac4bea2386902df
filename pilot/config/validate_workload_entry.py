"""Validate a WorkloadEntry spec (``networking.istio.io`` WorkloadEntry) into ``types.WorkloadEntry``.

The same message shape is a ServiceEntry's inline endpoint, so ``read_workload_fields`` is shared with
``validate_service_entry``; only the address rules differ (a WorkloadEntry is a pod with a meshplane sidecar, its
address the pod IP, so it must be an IP; an endpoint of a DNS ServiceEntry may be a hostname).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pilot.config.errors import quote
from pilot.config.istio_api import fields_except
from pilot.config.types import ConfigMeta, WorkloadEntry, frozen_labels
from pilot.config.validate_common import UINT32_MAX, Fields, describe
from pilot.config.validate_names import dns1123_label_error, host_error, ip_error, locality_error

__all__ = [
    "WORKLOAD_FIELDS",
    "WorkloadFields",
    "read_workload_fields",
    "validate_workload_entry",
    "workload_address_error",
]

WORKLOAD_FIELDS = fields_except("WorkloadEntry", "network")  # no multi-network support
# what can only be meant as an IP address: digits, dots and slashes (no hostname has an all-numeric top level), or a
# colon (no hostname has one)
_IP_LIKE = re.compile(r"^(?:[0-9./]+|.*:.*)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadFields:
    """The fields a WorkloadEntry and a ServiceEntry endpoint have in common, read and checked."""

    address: str
    ports: Mapping[str, int]
    labels: Mapping[str, str]
    weight: int | None
    locality: str
    service_account: str


def read_workload_fields(fields: Fields, *, address_required: bool = True) -> WorkloadFields:
    """Read the shared fields; the caller checks ``address`` for its own rules (see ``workload_address_error``)."""
    address = fields.string("address", required=address_required) or ""
    ports: dict[str, int] = {}
    for name, value, path in fields.entries("ports"):
        fields.problems.add_if(path, dns1123_label_error(name, "port name"))
        if isinstance(value, bool) or not isinstance(value, int):
            fields.problems.add(path, f"expected a port number, got {describe(value)}")
        elif not 1 <= value <= 65535:
            fields.problems.add(path, f"port must be between 1 and 65535, got {int(value)}")
        else:
            ports[name] = int(value)
    labels = fields.labels("labels") or {}
    weight = fields.integer("weight", minimum=0, maximum=UINT32_MAX)
    locality = fields.string("locality") or ""
    if locality:
        fields.problems.add_if(fields.at("locality"), locality_error(locality))
    return WorkloadFields(
        address=address,
        ports=MappingProxyType(dict(sorted(ports.items()))),
        labels=frozen_labels(labels),
        weight=weight or None,  # proto3: 0 is unset (Envoy's default weight 1 applies)
        locality=locality,
        service_account=fields.string("serviceAccount") or "",
    )


def workload_address_error(address: str, *, hostname_allowed: bool) -> str | None:
    """An IP address, or (``hostname_allowed``: a DNS ServiceEntry endpoint) a fully qualified hostname."""
    if address.startswith("unix://"):
        return "unix domain socket addresses are not supported by meshplane yet"
    if ip_error(address) is None:
        return None
    if _IP_LIKE.match(address):
        return ip_error(address)
    if not hostname_allowed:
        return (
            f"{quote(address)} is not an IP address: a hostname address is not supported by meshplane yet "
            "(a WorkloadEntry's address is its pod IP)"
        )
    if host_error(address, wildcard=False) is not None:
        return f"{quote(address)} is neither an IP address nor a valid hostname"
    return None


def validate_workload_entry(spec: Fields, meta: ConfigMeta) -> WorkloadEntry:
    """Check a WorkloadEntry spec (already opened with ``WORKLOAD_FIELDS``); problems go to ``spec.problems``."""
    workload = read_workload_fields(spec)
    if workload.address:
        spec.problems.add_if(spec.at("address"), workload_address_error(workload.address, hostname_allowed=False))
    return WorkloadEntry(
        meta=meta,
        address=workload.address,
        ports=workload.ports,
        labels=workload.labels,
        weight=workload.weight,
        locality=workload.locality,
        service_account=workload.service_account,
    )
