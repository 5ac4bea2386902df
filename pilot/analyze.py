"""``meshplane analyze DIR``: check a config directory offline, the way Pilot would read it (istioctl analyze).

Reports what Pilot would reject (with file:line and field path), what it would skip, and mesh-level problems
that are valid YAML but cannot work: rules for hosts nobody serves, workloads no service selects, service ports the
sidecar keeps for itself, two workloads on one pod IP, an AccessList whose entries file Mixer cannot read.

Codes are stable: a check that is gone leaves its number unused (MP0204 and MP0207 were the loopback sidecar's
address and port limits, MP0213 its lack of tcp/tls routes).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from meshplane import names
from pilot.config import ConfigSink, ConfigStore, DirectorySource
from pilot.config.types import AccessList, ConfigMeta, DestinationRule, VirtualService, WorkloadEntry
from pilot.model import build_snapshot, host_matches, resolve_host
from pilot.model.types import MeshSnapshot, ServiceInstance

__all__ = ["Finding", "analyze_directory", "analyze_snapshot", "format_finding"]

Level = Literal["Error", "Warning", "Info"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    level: Level
    code: str  # MP01xx: config rejected or skipped; MP02xx: mesh-level problems
    resource: str  # "VirtualService default/reviews" or a file name
    location: str  # where: file:line (or an object reference)
    message: str


def format_finding(finding: Finding) -> str:
    """``Error [MP0101] (VirtualService default/reviews rules.yaml:3) message``, as istioctl analyze prints."""
    where = " ".join(part for part in (finding.resource, finding.location) if part)
    return f"{finding.level} [{finding.code}] ({where}) {finding.message}"


def _describe(meta: ConfigMeta) -> tuple[str, str]:
    key = meta.key
    return f"{key.kind} {key.namespace}/{key.name}", str(meta.origin)


async def analyze_directory(config_dir: Path) -> list[Finding]:
    """Load ``config_dir`` exactly as Pilot's directory source does, then analyze what would be in force."""
    store = ConfigStore()
    await DirectorySource(config_dir, ConfigSink(store, lambda _change: None)).load_initial()
    findings: list[Finding] = []
    for error in store.file_errors:
        findings.append(Finding(level="Error", code="MP0100", resource="", location="", message=str(error)))
    for rejection in store.rejections:
        for error in rejection.errors:
            resource = f"{error.key.kind} {error.key.namespace}/{error.key.name}" if error.key else ""
            location = str(error.origin)
            detail = f"{error.path}: {error.message}" if error.path else error.message
            findings.append(Finding(level="Error", code="MP0101", resource=resource, location=location, message=detail))
    for warning in store.warnings:
        findings.append(Finding(level="Warning", code="MP0102", resource="", location="", message=warning))
    findings.extend(analyze_snapshot(build_snapshot(store.accepted, version=store.version)))
    return findings


def analyze_snapshot(snapshot: MeshSnapshot) -> list[Finding]:
    """Mesh-level checks over what would be in force."""
    findings: list[Finding] = []
    hosts = tuple(snapshot.services)

    def served(host: str) -> bool:
        return any(host_matches(host, service) for service in hosts)

    for resource in snapshot.configs.values():
        resource_name, location = _describe(resource.meta)
        if isinstance(resource, VirtualService):
            for host in resource.hosts:
                fqdn = resolve_host(host, resource.meta.key.namespace, snapshot.domain_suffix)
                if not served(fqdn):
                    findings.append(
                        Finding(
                            level="Warning",
                            code="MP0201",
                            resource=resource_name,
                            location=location,
                            message=f"host {host!r} ({fqdn}) matches no ServiceEntry host: the rule routes nothing",
                        )
                    )
        elif isinstance(resource, DestinationRule):
            fqdn = resolve_host(resource.host, resource.meta.key.namespace, snapshot.domain_suffix)
            if not served(fqdn):
                findings.append(
                    Finding(
                        level="Warning",
                        code="MP0202",
                        resource=resource_name,
                        location=location,
                        message=f"host {resource.host!r} ({fqdn}) matches no ServiceEntry host",
                    )
                )
        elif (
            isinstance(resource, AccessList)
            and resource.entries_file is not None
            and not Path(resource.entries_file).is_file()
        ):
            findings.append(
                Finding(
                    level="Warning",
                    code="MP0206",
                    resource=resource_name,
                    location=location,
                    message=f"entries file {resource.entries_file} does not exist: until Mixer can read it, "
                    "the list denies every request it checks",
                )
            )
    findings.extend(_workload_findings(snapshot))
    findings.extend(_peer_authentication_findings(snapshot))
    findings.extend(_shadowed_service_findings(snapshot))
    return findings


def _shadowed_service_findings(snapshot: MeshSnapshot) -> list[Finding]:
    """A host served by two registries: only one service is used (see ``pilot.model.registry``)."""
    findings: list[Finding] = []
    for shadowed in snapshot.shadowed_services:
        service, source = shadowed.service, shadowed.service.source
        config = snapshot.configs.get(source)
        findings.append(
            Finding(
                level="Warning",
                code="MP0212",
                resource=f"{source.kind} {source.namespace}/{source.name}",
                location=str(config.meta.origin) if config is not None else "",
                message=f"host {service.host} of registry {shadowed.registry} is also served by registry "
                f"{shadowed.shadowed_by}, whose service takes precedence: this one is not used",
            )
        )
    return findings


def _inbound_port_findings(resource_name: str, location: str, instances: Sequence[ServiceInstance]) -> list[Finding]:
    """What Pilot would leave out of a workload's inbound side: a port the sidecar reserves for itself, and a port
    two services give different protocols or app ports (the first one, in model order, is served)."""
    findings: list[Finding] = []
    first: dict[int, ServiceInstance] = {}
    for instance in instances:
        port = instance.port
        if port.number in names.SIDECAR_PORTS:
            message = f"service {instance.service.host} port {port.number} is reserved by the sidecar (Envoy's admin "
            message += "15000, capture ports 15001 and 15006, DNS 15053): the workload is not served on it"
            findings.append(
                Finding(level="Error", code="MP0208", resource=resource_name, location=location, message=message)
            )
        chosen = first.setdefault(port.number, instance)
        if chosen.port.protocol is not port.protocol or chosen.target_port != instance.target_port:
            message = (
                f"port {port.number} is served for {chosen.service.host} ({chosen.port.protocol.value} -> "
                f"{chosen.target_port}), not for {instance.service.host} ({port.protocol.value} -> "
                f"{instance.target_port}): one port has one protocol and one app port"
            )
            findings.append(
                Finding(level="Error", code="MP0209", resource=resource_name, location=location, message=message)
            )
    return findings


def _peer_authentication_findings(snapshot: MeshSnapshot) -> list[Finding]:
    """Several mesh-wide or namespace-wide PeerAuthentications in one namespace: the first in name order applies."""
    findings: list[Finding] = []
    for namespace, policies in snapshot.peer_authentications.items():
        wide = [p for p in policies if p.selector is None]
        level = "mesh-wide" if namespace == snapshot.root_namespace else "namespace-wide"
        for ignored in wide[1:]:
            resource_name, location = _describe(ignored.meta)
            findings.append(
                Finding(
                    level="Warning",
                    code="MP0211",
                    resource=resource_name,
                    location=location,
                    message=f"another {level} PeerAuthentication, {namespace}/{wide[0].meta.key.name}, comes first "
                    "in name order and applies: this one is ignored",
                )
            )
    return findings


def _workload_findings(snapshot: MeshSnapshot) -> list[Finding]:
    findings: list[Finding] = []
    by_address: dict[str, list[WorkloadEntry]] = defaultdict(list)
    for workload in snapshot.workloads.values():
        by_address[workload.address].append(workload)
        resource_name, location = _describe(workload.meta)
        instances = snapshot.instances.get(workload.meta.key, ())
        if not instances:
            findings.append(
                Finding(
                    level="Info",
                    code="MP0203",
                    resource=resource_name,
                    location=location,
                    message="no ServiceEntry selects this workload: its sidecar serves no service port "
                    "(fine for a client-only workload)",
                )
            )
        findings.extend(_inbound_port_findings(resource_name, location, instances))
    for address, workloads in sorted(by_address.items()):
        if len(workloads) > 1:
            names = ", ".join(str(w.meta.key) for w in workloads)
            findings.append(
                Finding(
                    level="Error",
                    code="MP0205",
                    resource="",
                    location="",
                    message=f"address {address} is used by several workloads ({names}): a pod IP is one pod's: "
                    "Mixer resolves callers and callees by address and takes the first of them",
                )
            )
    for conflict in snapshot.sidecars.conflicts:  # Istio's analyzer: MultipleSidecarsWithoutSelectors
        findings.append(Finding(level="Error", code="MP0214", resource="Sidecar", location="", message=conflict))
    return findings
