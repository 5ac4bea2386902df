"""Which JWT rules apply to a workload (Istio ``PushContext.AuthnPolicies.GetJwtPoliciesForWorkload`` and
``newPolicyApplier``).

Every RequestAuthentication that selects the workload applies (Istio's selection rule, the one AuthorizationPolicy
uses: ``policy_selects``): those of the root namespace without a selector (mesh-wide), with a selector matching the
workload, and those of the workload's namespace without a selector or with a matching one. Their rules are
merged, not overridden, and sorted by issuer, as Istio does, so that the generated filter is deterministic.
"""

from __future__ import annotations

from pilot.config.types import JwtRule, WorkloadEntry
from pilot.model.policies import policy_selects
from pilot.model.types import MeshSnapshot

__all__ = ["workload_jwt_rules"]


def workload_jwt_rules(snapshot: MeshSnapshot, workload: WorkloadEntry) -> tuple[JwtRule, ...]:
    """The JWT rules of every RequestAuthentication that selects ``workload``, sorted by issuer (stable)."""
    namespaces = [snapshot.root_namespace]
    if workload.meta.key.namespace != snapshot.root_namespace:
        namespaces.append(workload.meta.key.namespace)
    rules = [
        rule
        for namespace in namespaces
        for policy in snapshot.request_authentications.get(namespace, ())
        if policy_selects(policy.selector, namespace, workload, snapshot.root_namespace)
        for rule in policy.jwt_rules
    ]
    return tuple(sorted(rules, key=lambda rule: rule.issuer))
