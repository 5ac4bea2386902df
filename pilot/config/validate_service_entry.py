"""Validate a ServiceEntry spec into ``types.ServiceEntry`` (Istio's ``ValidateServiceEntry`` rules)."""

from __future__ import annotations

from pilot.config.istio_api import fields_except
from pilot.config.types import (
    ConfigMeta,
    Labels,
    Protocol,
    Resolution,
    ServiceEntry,
    ServiceEntryEndpoint,
    ServicePort,
    frozen_labels,
)
from pilot.config.validate_common import Fields
from pilot.config.validate_names import cidr_error, dns1123_label_error, export_to, host_error, ip_error
from pilot.config.validate_workload_entry import WORKLOAD_FIELDS, read_workload_fields, workload_address_error

__all__ = [
    "SERVICE_ENTRY_FIELDS",
    "SUPPORTED_PROTOCOLS",
    "validate_service_entry",
]

SERVICE_ENTRY_FIELDS = fields_except("ServiceEntry")
SUPPORTED_PROTOCOLS = tuple(p.value for p in Protocol if p is not Protocol.UNKNOWN)
_PORT_FIELDS = ("number", "protocol", "name", "targetPort")
_RESOLUTIONS = tuple(r.value for r in Resolution)


def validate_service_entry(spec: Fields, meta: ConfigMeta) -> ServiceEntry:
    """Check a ServiceEntry spec (already opened with ``SERVICE_ENTRY_FIELDS``); problems go to ``spec.problems``."""
    hosts = _hosts(spec)
    ports = _ports(spec)
    location = spec.enum("location", ("MESH_EXTERNAL", "MESH_INTERNAL")) or "MESH_EXTERNAL"
    resolution = Resolution(spec.enum("resolution", _RESOLUTIONS) or Resolution.NONE.value)
    addresses = _addresses(spec, resolution)
    endpoints = _endpoints(spec, ports, resolution)
    selector = _workload_selector(spec)
    if spec.has("workloadSelector") and spec.has("endpoints"):
        spec.report(None, "only one of workloadSelector or endpoints may be set")
    subject_alt_names = spec.strings("subjectAltNames") or ()
    for index, name in enumerate(subject_alt_names):
        if not name:
            spec.problems.add(spec.at("subjectAltNames", index), "must not be empty")
    _check_resolution(spec, hosts, ports, resolution, endpoints)
    return ServiceEntry(
        meta=meta,
        hosts=hosts,
        addresses=addresses,
        ports=ports,
        location="MESH_INTERNAL" if location == "MESH_INTERNAL" else "MESH_EXTERNAL",
        resolution=resolution,
        endpoints=endpoints,
        workload_selector=selector,
        export_to=export_to(spec, meta.key.namespace, allow_none=True),
        subject_alt_names=subject_alt_names,
    )


def _hosts(spec: Fields) -> tuple[str, ...]:
    hosts = spec.strings("hosts", required=True) or ()
    seen: set[str] = set()
    for index, host in enumerate(hosts):
        path = spec.at("hosts", index)
        if host == "*":
            spec.problems.add(path, "invalid host '*': a ServiceEntry cannot stand for every host")
        else:
            spec.problems.add_if(path, host_error(host, short=False))
        if host in seen:
            spec.problems.add(path, f"duplicate host {host!r}")
        seen.add(host)
    return hosts


def _addresses(spec: Fields, resolution: Resolution) -> tuple[str, ...]:
    """Istio's rules: each an IP address or a CIDR block; CIDRs only with resolution NONE or STATIC (a DNS-resolved
    service has no address range)."""
    addresses = spec.strings("addresses") or ()
    seen: set[str] = set()
    for index, address in enumerate(addresses):
        path = spec.at("addresses", index)
        spec.problems.add_if(path, cidr_error(address))
        if address in seen:
            spec.problems.add(path, f"duplicate address {address!r}")
        seen.add(address)
    if any("/" in address for address in addresses) and resolution not in (Resolution.NONE, Resolution.STATIC):
        spec.report("addresses", "CIDR addresses are allowed only for NONE/STATIC resolution types")
    return addresses


def _ports(spec: Fields) -> tuple[ServicePort, ...]:
    ports: list[ServicePort] = []
    numbers: set[int] = set()
    names: set[str] = set()
    for port in spec.mappings("ports", known=_PORT_FIELDS, message="ServicePort"):
        number = port.integer("number", minimum=1, maximum=65535, required=True)
        name = port.string("name", required=True)
        protocol = port.enum("protocol", SUPPORTED_PROTOCOLS, ignore_case=True)
        if not port.has("protocol"):
            port.report("protocol", f"required field is missing (one of {', '.join(SUPPORTED_PROTOCOLS)})")
        target = port.integer("targetPort", minimum=1, maximum=65535)
        if name is not None:
            port.problems.add_if(port.at("name"), dns1123_label_error(name, "port name"))
            if name in names:
                port.report("name", f"port name {name!r} is already used by another port")
            names.add(name)
        if number is not None:
            if number in numbers:
                port.report("number", f"port {number} is already defined")
            numbers.add(number)
        ports.append(
            ServicePort(
                number=number or 0,
                name=name or "",
                protocol=Protocol(protocol) if protocol else Protocol.UNKNOWN,
                target_port=target,
            )
        )
    return tuple(ports)


def _endpoints(
    spec: Fields, ports: tuple[ServicePort, ...], resolution: Resolution
) -> tuple[ServiceEntryEndpoint, ...]:
    port_names = [p.name for p in ports if p.name]
    endpoints: list[ServiceEntryEndpoint] = []
    for endpoint in spec.mappings("endpoints", known=WORKLOAD_FIELDS, message="WorkloadEntry"):
        fields = read_workload_fields(endpoint)
        if fields.address:
            endpoint.problems.add_if(endpoint.at("address"), _endpoint_address_error(fields.address, resolution))
        for name in fields.ports:
            if name not in port_names:
                endpoint.problems.add(
                    endpoint.at("ports", name),
                    f"port name {name!r} is not one of this ServiceEntry's ports ({', '.join(port_names) or 'none'})",
                )
        endpoints.append(
            ServiceEntryEndpoint(
                address=fields.address,
                ports=fields.ports,
                labels=fields.labels,
                weight=fields.weight,
                locality=fields.locality,
                service_account=fields.service_account,
            )
        )
    return tuple(endpoints)


def _endpoint_address_error(address: str, resolution: Resolution) -> str | None:
    """DNS resolution takes IPs or hostnames; STATIC (and NONE, reported elsewhere) takes IPs only."""
    if resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN):
        return workload_address_error(address, hostname_allowed=True)
    if address.startswith("unix://"):
        return workload_address_error(address, hostname_allowed=False)
    if ip_error(address) is not None:
        return f"{address!r} is not an IP address (resolution {resolution.value} needs IP addresses)"
    return None


def _workload_selector(spec: Fields) -> Labels | None:
    selector = spec.mapping("workloadSelector", known=("labels",), message="WorkloadSelector")
    if selector is None:
        return None
    labels = selector.labels("labels", required=True)  # label syntax also rules out wildcards
    return frozen_labels(labels) if labels is not None else None


def _check_resolution(
    spec: Fields,
    hosts: tuple[str, ...],
    ports: tuple[ServicePort, ...],
    resolution: Resolution,
    endpoints: tuple[ServiceEntryEndpoint, ...],
) -> None:
    """The rules that tie resolution to hosts, addresses and endpoints."""
    if resolution is Resolution.NONE and endpoints:
        spec.report("endpoints", "endpoints are not allowed with resolution NONE (use STATIC or DNS)")
    if resolution is Resolution.DNS_ROUND_ROBIN and len(endpoints) > 1:
        spec.report("endpoints", "resolution DNS_ROUND_ROBIN allows at most one endpoint")
    if resolution is Resolution.DNS_ROUND_ROBIN and spec.has("workloadSelector"):
        spec.report(
            "workloadSelector",
            "with resolution DNS_ROUND_ROBIN not supported by meshplane yet: its LOGICAL_DNS cluster takes one "
            "address, and a selector may pick several workloads (use resolution DNS or STATIC)",
        )
    if resolution is Resolution.NONE:
        for index, host in enumerate(hosts):
            if host.startswith("*."):
                spec.problems.add(
                    spec.at("hosts", index),
                    f"wildcard host {host!r} with resolution NONE is not supported by meshplane yet: passing "
                    "requests through to whatever name they carry needs Envoy's dynamic forward proxy, which "
                    "meshplane does not configure (list the hosts, or use resolution DNS with endpoints)",
                )
    dns = resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN)
    if dns and not endpoints and not spec.has("workloadSelector"):
        for index, host in enumerate(hosts):
            if host.startswith("*"):
                spec.problems.add(
                    spec.at("hosts", index),
                    f"wildcard host {host!r} cannot be resolved by DNS: with resolution {resolution.value} and no "
                    "endpoints every host must be a fully qualified domain name",
                )
    if resolution is not Resolution.NONE and len(hosts) > 1:
        opaque = [p.name or str(p.number) for p in ports if p.protocol is not Protocol.UNKNOWN and not _can_route(p)]
        if opaque:
            spec.report(
                "hosts",
                f"several hosts with non-HTTP, non-TLS ports ({', '.join(opaque)}) cannot be told apart: "
                "use one host per ServiceEntry or resolution NONE",
            )


def _can_route(port: ServicePort) -> bool:
    """HTTP (by Host header) and TLS (by SNI) can tell several hosts apart on one port; plain TCP cannot."""
    return port.protocol.is_http or port.protocol in (Protocol.TLS, Protocol.HTTPS)
