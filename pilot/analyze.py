"""``meshplane analyze DIR``: check a config directory offline, the way Pilot would read it (istioctl analyze).

Reports what Pilot would reject (with file:line and field path), what it would skip, and mesh-level problems
that are valid YAML but cannot work: rules for hosts nobody serves, workloads no service selects, service ports the
sidecar keeps for itself, two workloads on one pod IP, an AccessList whose entries file Mixer cannot read, a CUSTOM
AuthorizationPolicy whose provider cannot be called (MP0219: not ``mixer`` nor an ``extensionProviders`` entry of the
mesh config, several providers on one workload, or a provider service the registry lacks; Pilot fails such a
policy closed), a Sidecar ingress listener's ``tls`` on a workload whose PeerAuthentication does not disable mTLS
on that port (MP0215: Istio then keeps its mTLS chains and does not use the listener's tls), a Sidecar
``egressProxy`` naming no registry service port or subset (MP0216: that traffic goes nowhere), a Telemetry provider
that configures nothing (MP0217), several Telemetries without selector in one namespace (MP0218;
``pilot.analyze_telemetry``). ``mesh_config`` (``--mesh-config``, istioctl's ``--meshConfigFile``) is read as Pilot
reads it
(MP0103 when it is rejected) and left out of the directory's resources.

Codes are stable: a check that is gone leaves its number unused (MP0204 and MP0207 were the loopback sidecar's
address and port limits, MP0213 its lack of tcp/tls routes). MP0214 is several selector-less Sidecars (or
ProxyConfigs) in one namespace; the unusable CUSTOM provider check, which once shared that number, is MP0219.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from meshplane import names
from pilot.analyze_telemetry import ignored_namespace_wide, telemetry_provider_problems
from pilot.config import ConfigSink, ConfigStore, DirectorySource
from pilot.config.mesh_config import DEFAULT_MESH_CONFIG, MeshConfig, MeshConfigError, load_mesh_config
from pilot.config.types import (
    MIXER_PROVIDER,
    AccessList,
    AuthorizationPolicy,
    ConfigMeta,
    DestinationRule,
    VirtualService,
    WorkloadEntry,
)
from pilot.generate.ext_authz import provider_ext_authz
from pilot.model import build_snapshot, host_matches, resolve_host
from pilot.model.mtls import effective_mtls_mode
from pilot.model.policies import workload_policies
from pilot.model.sidecar_index import sidecar_for
from pilot.model.sidecar_scope import egress_scope
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


def _finding(meta: ConfigMeta, level: Level, code: str, message: str) -> Finding:
    """A finding about the resource ``meta`` describes, at its origin."""
    resource_name, location = _describe(meta)
    return Finding(level=level, code=code, resource=resource_name, location=location, message=message)


def _mesh_config(path: Path | None, findings: list[Finding]) -> MeshConfig:
    if path is None:
        return DEFAULT_MESH_CONFIG
    try:
        return load_mesh_config(path)
    except MeshConfigError as exc:
        for error in exc.errors:
            message = f"{error.path}: {error.message}" if error.path else error.message
            findings.append(
                Finding(
                    level="Error", code="MP0103", resource="MeshConfig", location=str(error.origin), message=message
                )
            )
        return DEFAULT_MESH_CONFIG


async def analyze_directory(config_dir: Path, mesh_config: Path | None = None) -> list[Finding]:
    """Load ``config_dir`` exactly as Pilot's directory source does (with the ``mesh_config`` file, if given),
    then analyze what would be in force."""
    findings: list[Finding] = []
    mesh = _mesh_config(mesh_config, findings)
    store = ConfigStore()
    exclude = (mesh_config,) if mesh_config is not None else ()
    await DirectorySource(config_dir, ConfigSink(store, lambda _change: None), exclude=exclude).load_initial()
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
    snapshot = build_snapshot(
        store.accepted,
        version=store.version,
        trust_domain=mesh.names.trust_domain,
        root_namespace=mesh.names.root_namespace,
        mesh=mesh.settings,
    )
    findings.extend(analyze_snapshot(snapshot))
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
    findings.extend(_custom_provider_findings(snapshot))
    findings.extend(_sidecar_ingress_tls_findings(snapshot))
    findings.extend(_egress_proxy_findings(snapshot))
    findings.extend(_telemetry_findings(snapshot))
    return findings


def _egress_proxy_findings(snapshot: MeshSnapshot) -> list[Finding]:
    findings: list[Finding] = []
    for sidecar in snapshot.sidecars.all():
        proxy = sidecar.egress_proxy
        if proxy is None:
            continue
        scope = egress_scope(snapshot, (sidecar.meta.key.namespace, sidecar.meta.key))
        if scope.egress_proxy_cluster != names.BLACKHOLE_CLUSTER:
            continue
        subset = f" subset {proxy.subset}" if proxy.subset else ""
        message = (
            f"egressProxy {proxy.host}{subset} port {proxy.port} is no service port (or subset) of the registry: "
            "traffic to hosts outside the registry goes nowhere (BlackHoleCluster)"
        )
        findings.append(_finding(sidecar.meta, "Error", "MP0216", message))
    return findings


def _sidecar_ingress_tls_findings(snapshot: MeshSnapshot) -> list[Finding]:
    findings: list[Finding] = []
    for workload in snapshot.workloads.values():
        sidecar = sidecar_for(snapshot.sidecars, workload.meta.key.namespace, workload.labels)
        for listener in sidecar.ingress if sidecar is not None else ():
            mode = effective_mtls_mode(snapshot, workload, listener.port.number)
            if listener.tls is None or mode == "DISABLE" or sidecar is None:
                continue
            message = (
                f"ingress port {listener.port.number}'s tls is not used for {workload.meta.key}: its mTLS mode there "
                f"is {mode}; Istio terminates a Sidecar ingress listener's tls only where PeerAuthentication "
                "disables mTLS (mode DISABLE, or portLevelMtls for the port)"
            )
            findings.append(_finding(sidecar.meta, "Warning", "MP0215", message))
    return findings


def _telemetry_findings(snapshot: MeshSnapshot) -> list[Finding]:
    """Providers a Telemetry names that configure nothing (``pilot.analyze_telemetry``)."""
    findings: list[Finding] = []
    for telemetries in snapshot.telemetries.values():
        for telemetry in telemetries:
            findings.extend(
                _finding(telemetry.meta, "Warning", "MP0217", f"{problem}: it configures nothing")
                for problem in telemetry_provider_problems(snapshot, telemetry)
            )
    for ignored, applying in ignored_namespace_wide(snapshot):
        message = (
            f"namespace {ignored.meta.key.namespace} has several Telemetries without a selector: only "
            f"{applying.meta.key.name!r} (the first by name) applies, this one does nothing"
        )
        findings.append(_finding(ignored.meta, "Warning", "MP0218", message))
    return findings


def _custom_provider_findings(snapshot: MeshSnapshot) -> list[Finding]:
    """CUSTOM policies whose provider a workload they select cannot call: Pilot denies what they would send to it
    (``pilot.generate.authz_filters``). One finding per policy and reason."""
    findings: dict[tuple[str, str], Finding] = {}
    for workload in snapshot.workloads.values():
        custom = workload_policies(snapshot, workload).custom
        providers = sorted({policy.provider or "" for policy in custom})
        if not custom or providers == [MIXER_PROVIDER]:
            continue
        try:
            if len(providers) > 1:
                raise LookupError(f"only 1 provider can be used per workload, found multiple providers: {providers}")
            provider_ext_authz(providers[0], snapshot)
        except LookupError as exc:
            for policy in custom:
                _add_custom_finding(findings, policy, workload, str(exc))
    return list(findings.values())


def _add_custom_finding(
    findings: dict[tuple[str, str], Finding], policy: AuthorizationPolicy, workload: WorkloadEntry, reason: str
) -> None:
    resource_name, location = _describe(policy.meta)
    findings.setdefault(
        (resource_name, reason),
        Finding(
            level="Warning",
            code="MP0219",
            resource=resource_name,
            location=location,
            message=f"CUSTOM provider {policy.provider!r} cannot be called for {_describe(workload.meta)[0]}: "
            f"{reason}; the policy fails closed (what it would send to the provider is denied)",
        ),
    )


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
            message = (
                f"another {level} PeerAuthentication, {namespace}/{wide[0].meta.key.name}, comes first "
                "in name order and applies: this one is ignored"
            )
            findings.append(_finding(ignored.meta, "Warning", "MP0211", message))
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
    for conflict in snapshot.proxy_configs.conflicts:  # Istio: "only valid to have a single selector-less" one
        findings.append(Finding(level="Error", code="MP0214", resource="ProxyConfig", location="", message=conflict))
    return findings
