"""DestinationRule ``loadBalancer`` -> Cluster fields (Istio ``applyLoadBalancer``, ``ApplyRingHashLoadBalancer``,
``setSlowStartConfig`` and the cluster half of ``applyLocalityLoadBalancer``).

- ``simple``: ROUND_ROBIN, LEAST_REQUEST (LEAST_CONN is its deprecated alias), RANDOM; unset: Istio's default,
  LEAST_REQUEST. A warmup becomes the policy's ``slow_start_config``.
- ``consistentHash``: RING_HASH (``ring_hash_lb_config.minimum_ring_size``; the deprecated top-level
  ``minimumRingSize`` defaults to Envoy's 1024, as Istio writes it) or MAGLEV (``maglev_lb_config.table_size``).
  The hash key goes on the routes to the cluster (``route_hash_policy``).
- locality: ``common_lb_config.locality_weighted_lb_config`` when Istio's locality balancing is in force for the
  cluster (``distribute``, or failover: an outlier detection and the setting not disabled); the per-locality
  priorities and weights are the clients' (``locality_lb``).
"""

from __future__ import annotations

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import RuntimeDouble

from pilot.config.types import LoadBalancer, LocalityLbSetting, Warmup
from pilot.generate._protos import duration

__all__ = [
    "MESH_LOCALITY_LB_SETTING",
    "WARMUP_AGGRESSION_RUNTIME_KEY",
    "apply_load_balancer",
    "effective_locality_setting",
    "locality_failover_enabled",
]

# Istio's default MeshConfig.localityLbSetting: enabled, no distribute or failover (automatic failover by locality).
MESH_LOCALITY_LB_SETTING = LocalityLbSetting(enabled=True)
WARMUP_AGGRESSION_RUNTIME_KEY = "meshplane.warmup.aggression"  # Envoy requires a runtime key for the value

_SIMPLE_POLICIES = {
    "ROUND_ROBIN": Cluster.LbPolicy.ROUND_ROBIN,
    "LEAST_REQUEST": Cluster.LbPolicy.LEAST_REQUEST,
    "LEAST_CONN": Cluster.LbPolicy.LEAST_REQUEST,  # deprecated Istio alias of LEAST_REQUEST
    "RANDOM": Cluster.LbPolicy.RANDOM,
}


def effective_locality_setting(load_balancer: LoadBalancer | None) -> LocalityLbSetting | None:
    """Istio ``GetLocalityLbSetting`` with its default mesh setting (enabled): the rule's setting, unless it sets
    ``enabled: false`` (then none); without one, the mesh's."""
    setting = load_balancer.locality_lb_setting if load_balancer is not None else None
    if setting is not None:
        return None if setting.enabled is False else setting
    return MESH_LOCALITY_LB_SETTING


def locality_failover_enabled(setting: LocalityLbSetting | None, has_outlier_detection: bool) -> bool:
    """Failover by locality needs outlier detection (else Envoy never sees an endpoint fail) and no ``distribute``."""
    return setting is not None and not setting.distribute and has_outlier_detection


def apply_load_balancer(cluster: Cluster, load_balancer: LoadBalancer | None, *, has_outlier_detection: bool) -> None:
    """Istio ``applyLoadBalancer`` (PASSTHROUGH is rejected by validation: meshplane captures nothing, so there is
    no original destination to pass through to)."""
    setting = effective_locality_setting(load_balancer)
    if setting is not None and (setting.distribute or locality_failover_enabled(setting, has_outlier_detection)):
        cluster.common_lb_config.locality_weighted_lb_config.SetInParent()
    simple = load_balancer.simple if load_balancer is not None else "UNSPECIFIED"
    cluster.lb_policy = _SIMPLE_POLICIES.get(simple, Cluster.LbPolicy.LEAST_REQUEST)
    warmup = load_balancer.warmup if load_balancer is not None else None
    if warmup is not None:
        _apply_slow_start(cluster, warmup)
    hashing = load_balancer.consistent_hash if load_balancer is not None else None
    if hashing is None:
        return
    cluster.ClearField("lb_config")
    if hashing.algorithm == "MAGLEV":
        cluster.lb_policy = Cluster.LbPolicy.MAGLEV
        if hashing.table_size:
            cluster.maglev_lb_config.table_size.value = hashing.table_size
        return
    cluster.lb_policy = Cluster.LbPolicy.RING_HASH
    if hashing.deprecated_ring_size:
        cluster.ring_hash_lb_config.minimum_ring_size.value = hashing.minimum_ring_size or 1024
    elif hashing.minimum_ring_size:
        cluster.ring_hash_lb_config.minimum_ring_size.value = hashing.minimum_ring_size


def _apply_slow_start(cluster: Cluster, warmup: Warmup) -> None:
    """Istio ``setSlowStartConfig``: on the round robin or least request config (validation allows no other)."""
    if cluster.lb_policy == Cluster.LbPolicy.ROUND_ROBIN:
        slow_start = cluster.round_robin_lb_config.slow_start_config
    else:
        slow_start = cluster.least_request_lb_config.slow_start_config
    slow_start.slow_start_window.FromTimedelta(duration(warmup.duration))
    if warmup.minimum_percent is not None:
        slow_start.min_weight_percent.value = warmup.minimum_percent
    if warmup.aggression is not None:
        slow_start.aggression.CopyFrom(
            RuntimeDouble(default_value=warmup.aggression, runtime_key=WARMUP_AGGRESSION_RUNTIME_KEY)
        )
