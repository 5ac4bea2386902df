"""Which AuthorizationPolicies and Mixer policies apply to a workload (Istio ``ListAuthorizationPolicies``).

A policy applies to a workload when it is

- in the root namespace (``--root-namespace``, default ``istio-system``) without a selector: every workload of the
  mesh;
- in the root namespace with a selector: every workload of any namespace whose labels match it;
- in the workload's namespace without a selector: every workload of that namespace;
- in the workload's namespace with a selector that matches the workload's labels.

Pilot compiles the AuthorizationPolicies into each sidecar's inbound RBAC and ext_authz filters; Mixer evaluates the
Mixer policies (AccessList, RateLimit) of the destination workload on each check. Both use this one function, so
they always agree on which sidecars call Mixer and what Mixer checks for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from pilot.config.types import MIXER_PROVIDER, AuthorizationPolicy, Labels, MixerPolicy, WorkloadEntry
from pilot.model.build import labels_match
from pilot.model.types import MeshSnapshot

__all__ = ["MIXER_PROVIDER", "WorkloadPolicies", "policy_selects", "workload_policies"]

_P = TypeVar("_P", AuthorizationPolicy, MixerPolicy)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadPolicies:
    """The policies that apply to one workload, each group in (root namespace first, then) namespace/name order."""

    custom: tuple[AuthorizationPolicy, ...] = ()
    deny: tuple[AuthorizationPolicy, ...] = ()
    allow: tuple[AuthorizationPolicy, ...] = ()
    audit: tuple[AuthorizationPolicy, ...] = ()
    mixer: tuple[MixerPolicy, ...] = ()

    @property
    def checks_with_mixer(self) -> bool:
        """Whether the workload's sidecar calls Mixer (ext_authz): a CUSTOM policy or a Mixer policy selects it."""
        return bool(self.custom or self.mixer)

    @property
    def mixer_fail_open(self) -> bool:
        """What the sidecar does when Mixer cannot answer: let the request through only when every Mixer policy
        selecting the workload says ``failOpen: true`` (and no CUSTOM policy, which always fails closed)."""
        return bool(self.mixer) and not self.custom and all(p.fail_open for p in self.mixer)

    @property
    def empty(self) -> bool:
        return not (self.custom or self.deny or self.allow or self.audit or self.mixer)


def policy_selects(
    selector: Labels | None, policy_namespace: str, workload: WorkloadEntry, root_namespace: str
) -> bool:
    """Istio's selection rule for a policy in ``policy_namespace`` (see the module doc)."""
    if policy_namespace not in (workload.meta.key.namespace, root_namespace):
        return False
    return not selector or labels_match(selector, workload.labels)


def _applying(
    by_namespace: Iterable[tuple[str, tuple[_P, ...]]], workload: WorkloadEntry, root_namespace: str
) -> list[_P]:
    return [
        policy
        for namespace, policies in by_namespace
        for policy in policies
        if policy_selects(policy.selector, namespace, workload, root_namespace)
    ]


def workload_policies(snapshot: MeshSnapshot, workload: WorkloadEntry) -> WorkloadPolicies:
    """Every AuthorizationPolicy and Mixer policy that applies to ``workload``, grouped by action."""
    namespaces = [snapshot.root_namespace]
    if workload.meta.key.namespace != snapshot.root_namespace:
        namespaces.append(workload.meta.key.namespace)
    authz = _applying(
        ((ns, snapshot.authorization_policies.get(ns, ())) for ns in namespaces), workload, snapshot.root_namespace
    )
    mixer = _applying(
        ((ns, snapshot.mixer_policies.get(ns, ())) for ns in namespaces), workload, snapshot.root_namespace
    )
    return WorkloadPolicies(
        custom=tuple(p for p in authz if p.action == "CUSTOM"),
        deny=tuple(p for p in authz if p.action == "DENY"),
        allow=tuple(p for p in authz if p.action == "ALLOW"),
        audit=tuple(p for p in authz if p.action == "AUDIT"),
        mixer=tuple(mixer),
    )
