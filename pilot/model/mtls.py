"""Which mutual TLS mode applies to a workload's port: Istio's PeerAuthentication precedence.

Istio (``pilot/pkg/model/authentication.go``, ``ComposePeerAuthentication``) composes, for one workload:

1. the mesh-wide policy: no selector, in the root namespace (``--root-namespace``, default ``istio-system``);
2. the namespace-wide policy: no selector, in the workload's namespace;
3. the workload policy: a selector in the workload's namespace that matches its labels;
4. on that workload policy, the ``portLevelMtls`` entry for the port.

Each level that is not UNSET replaces the mode so far, starting from PERMISSIVE (the default when nothing is
set); a port-level UNSET takes the workload's mode. When a level has several candidates Istio takes the oldest
(creation time); config files have no creation time, so the first in namespace/name order wins, every time, and
the others are logged as ignored.

Port-level keys are *workload* ports, as in Istio: the port the app listens on (the WorkloadEntry's port for the
service port, else the ServiceEntry's targetPort), which is also what :func:`workload_port` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import structlog

from meshplane.identity import TLS_MODE_LABEL
from pilot.config.types import MtlsMode, PeerAuthentication, ServicePort, WorkloadEntry
from pilot.model.build import labels_match
from pilot.model.types import MeshSnapshot

__all__ = [
    "EffectiveMtlsMode",
    "MtlsPolicies",
    "effective_mtls_mode",
    "istio_tls_endpoint",
    "mtls_policies",
    "workload_port",
]

log = structlog.get_logger(__name__)

EffectiveMtlsMode = Literal["STRICT", "PERMISSIVE", "DISABLE"]
_DEFAULT_MODE: EffectiveMtlsMode = "PERMISSIVE"

_warned: set[tuple[str, str, str]] = set()  # (level, namespace, ignored policy) already reported


@dataclass(frozen=True, slots=True, kw_only=True)
class MtlsPolicies:
    """The policies that apply to one workload, one per level (None: that level has none)."""

    mesh: PeerAuthentication | None
    namespace: PeerAuthentication | None
    workload: PeerAuthentication | None


def _first(level: str, namespace: str, candidates: list[PeerAuthentication]) -> PeerAuthentication | None:
    if not candidates:
        return None
    chosen = candidates[0]
    for ignored in candidates[1:]:
        marker = (level, namespace, ignored.meta.key.name)
        if marker not in _warned:  # once per policy: snapshots are rebuilt on every config change
            _warned.add(marker)
            log.warning(
                "peer_authentication_ignored",
                reason=f"more than one {level} PeerAuthentication; the first in name order applies",
                namespace=namespace,
                applies=chosen.meta.key.name,
                ignored=ignored.meta.key.name,
            )
    return chosen


def mtls_policies(snapshot: MeshSnapshot, workload: WorkloadEntry) -> MtlsPolicies:
    """The mesh-wide, namespace-wide and workload policies that apply to ``workload`` (Istio's selection: a
    selector in the root namespace only selects workloads of the root namespace)."""
    namespace = workload.meta.key.namespace
    root = snapshot.root_namespace
    mesh = [p for p in snapshot.peer_authentications.get(root, ()) if p.selector is None]
    local = snapshot.peer_authentications.get(namespace, ()) if namespace != root else ()
    selected = [
        p
        for p in snapshot.peer_authentications.get(namespace, ())
        if p.selector is not None and labels_match(p.selector, workload.labels)
    ]
    return MtlsPolicies(
        mesh=_first("mesh-wide", root, mesh),
        namespace=_first("namespace-wide", namespace, [p for p in local if p.selector is None]),
        workload=_first(f"workload ({workload.meta.key.name})", namespace, selected),
    )


def effective_mtls_mode(snapshot: MeshSnapshot, workload: WorkloadEntry, port: int | None) -> EffectiveMtlsMode:
    """The mode the sidecar of ``workload`` enforces on inbound ``port`` (a workload port; None: the workload's
    mode without port-level settings)."""
    policies = mtls_policies(snapshot, workload)
    mode: EffectiveMtlsMode = _DEFAULT_MODE
    for policy in (policies.mesh, policies.namespace, policies.workload):
        if policy is not None:
            mode = _inherit(policy.mode, mode)
    if policies.workload is not None and port is not None:
        port_mode = policies.workload.port_level_mtls.get(port)
        if port_mode is not None:
            mode = _inherit(port_mode, mode)
    return mode


def _inherit(mode: MtlsMode, inherited: EffectiveMtlsMode) -> EffectiveMtlsMode:
    return inherited if mode == "UNSET" else mode


def workload_port(workload: WorkloadEntry, port: ServicePort) -> int:
    """The port the workload's app serves ``port`` on (what the model's ServiceInstance.target_port is)."""
    return workload.ports.get(port.name) or port.target_port or port.number


def istio_tls_endpoint(snapshot: MeshSnapshot, workload: WorkloadEntry, port: ServicePort) -> bool:
    """Whether clients send mutual TLS to this workload's sidecar on ``port`` under auto mTLS (Istio's
    ``tlsMode: istio`` endpoint label): it has a sidecar (every WorkloadEntry does), does not opt out with the
    ``security.istio.io/tlsMode`` label set to anything but ``istio``, and does not DISABLE mTLS on that port."""
    label = workload.labels.get(TLS_MODE_LABEL)
    if label is not None and label != "istio":
        return False
    return effective_mtls_mode(snapshot, workload, workload_port(workload, port)) != "DISABLE"
