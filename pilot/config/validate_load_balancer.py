"""Validate a DestinationRule ``loadBalancer`` (Istio ``validateLoadBalancer``, ``ValidateLocalityLbSetting``).

``simple`` and ``consistentHash`` are one ``oneof`` in Istio's proto, so at most one of them. A consistent hash takes
at most one hash key (``httpHeaderName``, ``httpCookie``, ``useSourceIp``, ``httpQueryParameterName``) and one
algorithm (``ringHash``, ``maglev``, or the deprecated top-level ``minimumRingSize``). ``localityLbSetting`` and the
warmup (``warmupDurationSecs`` or ``warmup``) follow Istio's validation, with two errors where Istio only warns or
silently does nothing, because meshplane never accepts what would not take effect:

- ``failover`` / ``failoverPriority`` without ``outlierDetection`` in the same policy (Istio: a warning; Envoy never
  moves to a lower priority without it);
- a warmup with a policy Envoy has no slow start for (RANDOM, consistent hashing).
"""

from __future__ import annotations

from typing import Literal, cast

from pilot.config.types import (
    ConsistentHash,
    HttpCookie,
    LoadBalancer,
    LocalityDistribute,
    LocalityFailover,
    LocalityLbSetting,
    Warmup,
)
from pilot.config.validate_common import Fields

__all__ = ["LOAD_BALANCER_POLICIES", "read_load_balancer"]

LOAD_BALANCER_POLICIES = ("UNSPECIFIED", "ROUND_ROBIN", "LEAST_REQUEST", "LEAST_CONN", "RANDOM", "PASSTHROUGH")
_BALANCER_FIELDS = ("simple", "consistentHash", "localityLbSetting", "warmupDurationSecs", "warmup")
_HASH_KEYS = ("httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName")
_HASH_ALGORITHMS = ("ringHash", "maglev", "minimumRingSize")
_HASH_FIELDS = (*_HASH_KEYS, *_HASH_ALGORITHMS)
_LOCALITY_FIELDS = ("distribute", "failover", "failoverPriority", "enabled")
_TOPOLOGY_LABELS = ("topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone")
_UINT64_MAX = 2**64 - 1
_SimpleLB = Literal["UNSPECIFIED", "ROUND_ROBIN", "LEAST_REQUEST", "LEAST_CONN", "RANDOM", "PASSTHROUGH"]


def read_load_balancer(policy: Fields, *, has_outlier_detection: bool) -> LoadBalancer | None:
    balancer = policy.mapping("loadBalancer", known=_BALANCER_FIELDS, message="LoadBalancerSettings")
    if balancer is None:
        return None
    balancer.exclusive(("simple", "consistentHash"))
    simple = balancer.enum("simple", LOAD_BALANCER_POLICIES) or "UNSPECIFIED"
    if simple == "PASSTHROUGH":
        balancer.report(
            "simple",
            "PASSTHROUGH is not supported by meshplane yet: it forwards to the original destination of a captured "
            "connection (Envoy ORIGINAL_DST), and meshplane captures none (apps call the sidecar as an HTTP proxy)",
        )
    consistent_hash = _consistent_hash(balancer)
    warmup = _warmup(balancer)
    if warmup is not None and (consistent_hash is not None or simple in ("RANDOM", "PASSTHROUGH")):
        balancer.report(
            "warmup" if balancer.has("warmup") else "warmupDurationSecs",
            "takes effect only with ROUND_ROBIN or LEAST_REQUEST (Envoy's slow start), not with "
            + ("consistentHash" if consistent_hash is not None else simple),
        )
    return LoadBalancer(
        simple=cast(_SimpleLB, simple),
        consistent_hash=consistent_hash,
        locality_lb_setting=_locality_lb_setting(balancer, has_outlier_detection),
        warmup=warmup,
    )


def _consistent_hash(balancer: Fields) -> ConsistentHash | None:
    hashing = balancer.mapping("consistentHash", known=_HASH_FIELDS, message="LoadBalancerSettings.ConsistentHashLB")
    if hashing is None:
        return None
    hashing.exclusive(_HASH_KEYS)
    algorithm = hashing.exclusive(_HASH_ALGORITHMS)
    header = hashing.string("httpHeaderName") if hashing.has("httpHeaderName") else None
    if header is not None and not header:
        hashing.report("httpHeaderName", "must not be empty")
    query = hashing.string("httpQueryParameterName") if hashing.has("httpQueryParameterName") else None
    if query is not None and not query:
        hashing.report("httpQueryParameterName", "must not be empty")
    use_source_ip = hashing.boolean("useSourceIp") or False
    ring_size = 0
    table_size = 0
    if algorithm == "ringHash":
        ring = hashing.mapping(
            "ringHash", known=("minimumRingSize",), message="LoadBalancerSettings.ConsistentHashLB.RingHash"
        )
        ring_size = (ring.integer("minimumRingSize", minimum=0, maximum=_UINT64_MAX) or 0) if ring is not None else 0
    elif algorithm == "maglev":
        table_size = _maglev_table_size(hashing)
    elif algorithm == "minimumRingSize":
        ring_size = hashing.integer("minimumRingSize", minimum=0, maximum=_UINT64_MAX) or 0
    return ConsistentHash(
        http_header_name=header or "",
        http_cookie=_http_cookie(hashing),
        use_source_ip=use_source_ip,
        http_query_parameter_name=query or "",
        algorithm="MAGLEV" if algorithm == "maglev" else "RING_HASH",
        minimum_ring_size=ring_size,
        table_size=table_size,
        deprecated_ring_size=algorithm in (None, "minimumRingSize"),
    )


def _maglev_table_size(hashing: Fields) -> int:
    maglev = hashing.mapping("maglev", known=("tableSize",), message="LoadBalancerSettings.ConsistentHashLB.MagLev")
    if maglev is None:
        return 0
    size = maglev.integer("tableSize", minimum=0, maximum=_UINT64_MAX) or 0
    if not size:
        maglev.report("tableSize", "tableSize must be set for maglev")
    elif not _is_prime(size):
        maglev.report("tableSize", f"tableSize must be a prime number for maglev, got {size}")
    elif size > 5000011:
        maglev.report("tableSize", f"must be at most 5000011 (Envoy's limit), got {size}")
    return size


def _is_prime(number: int) -> bool:
    if number < 2:
        return False
    divisor = 2
    while divisor * divisor <= number:
        if number % divisor == 0:
            return False
        divisor += 1
    return True


def _http_cookie(hashing: Fields) -> HttpCookie | None:
    cookie = hashing.mapping(
        "httpCookie", known=("name", "path", "ttl"), message="LoadBalancerSettings.ConsistentHashLB.HTTPCookie"
    )
    if cookie is None:
        return None
    name = cookie.string("name") or ""
    if not name:
        cookie.report("name", "name required for HttpCookie")
    ttl = _cookie_ttl(cookie)
    return HttpCookie(name=name, path=cookie.string("path") or "", ttl=ttl or 0.0)


def _cookie_ttl(cookie: Fields) -> float | None:
    """Istio requires ``ttl``; ``0s`` is allowed (a session cookie is not generated then: Envoy hashes only an
    existing cookie)."""
    if not cookie.has("ttl"):
        cookie.report("ttl", "ttl required for HttpCookie")
        return None
    if cookie.node.get("ttl") in ("0", "0s"):
        return 0.0
    return cookie.timeout("ttl")


def _warmup(balancer: Fields) -> Warmup | None:
    balancer.exclusive(("warmupDurationSecs", "warmup"))
    if balancer.has("warmupDurationSecs"):
        seconds = balancer.timeout("warmupDurationSecs")
        return Warmup(duration=seconds) if seconds is not None else None
    warmup = balancer.mapping(
        "warmup", known=("duration", "minimumPercent", "aggression"), message="WarmupConfiguration"
    )
    if warmup is None:
        return None
    seconds = warmup.timeout("duration", required=True)
    minimum = warmup.number("minimumPercent", minimum=0, maximum=100)
    aggression = warmup.number("aggression", minimum=1, maximum=1e9)
    return Warmup(duration=seconds, minimum_percent=minimum, aggression=aggression) if seconds is not None else None


def _locality_lb_setting(balancer: Fields, has_outlier_detection: bool) -> LocalityLbSetting | None:
    setting = balancer.mapping("localityLbSetting", known=_LOCALITY_FIELDS, message="LocalityLoadBalancerSetting")
    if setting is None:
        return None
    distribute = _distribute(setting)
    failover = _failover(setting)
    priority = setting.strings("failoverPriority") or ()
    if distribute and failover:
        setting.report(None, "can not simultaneously specify 'distribute' and 'failover'")
    if failover:
        for index, label in enumerate(priority):
            if label.partition("=")[0] in _TOPOLOGY_LABELS:
                setting.problems.add(
                    setting.at("failoverPriority", index),
                    f"can not simultaneously set 'failover' and topology label '{label}' in 'failover_priority'",
                )
    for index, label in enumerate(priority):
        if not label.partition("=")[0]:
            setting.problems.add(setting.at("failoverPriority", index), "must name a label")
    if (failover or priority) and not has_outlier_detection:
        setting.report(
            "failover" if failover else "failoverPriority",
            "outlier detection policy must be provided for failover: without outlierDetection in the same traffic "
            "policy Envoy never moves traffic to another locality",
        )
    return LocalityLbSetting(
        distribute=distribute, failover=failover, failover_priority=priority, enabled=setting.boolean("enabled")
    )


def _distribute(setting: Fields) -> tuple[LocalityDistribute, ...]:
    out: list[LocalityDistribute] = []
    sources: list[tuple[str, tuple[str | int, ...]]] = []
    for index, entry in enumerate(
        setting.mappings("distribute", known=("from", "to"), message="LocalityLoadBalancerSetting.Distribute")
    ):
        source = entry.string("from", required=True) or ""
        sources.append((source, ("distribute", index, "from")))
        weights: list[tuple[str, int]] = []
        targets = entry.entries("to")
        for locality, weight, path in targets:
            if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100:
                setting.problems.add(path, "locality weight must be in range [1, 100]")
                continue
            weights.append((locality, weight))
        if not entry.has("to"):
            entry.report("to", "required field is missing")
        elif sum(weight for _, weight in weights) != 100 and len(weights) == len(targets):
            entry.report("to", f"total locality weight {sum(weight for _, weight in weights)} != 100")
        _check_localities(setting, [(locality, ("distribute", index, "to", locality)) for locality, _ in weights])
        out.append(LocalityDistribute(from_=source, to=tuple(weights)))
    _check_localities(setting, sources)
    return tuple(out)


def _check_localities(setting: Fields, localities: list[tuple[str, tuple[str | int, ...]]]) -> None:
    """Istio ``validateLocalities``: ``region[/zone[/subzone]]`` with at most one ``*``, at the end, and no two that
    overlap (the same locality, or one that a wildcard before or after it covers)."""
    seen: list[tuple[str, ...]] = []
    for locality, path in localities:
        parts = tuple(locality.split("/"))
        if locality.count("*") > 1 or ("*" in locality and not locality.endswith("*")):
            setting.problems.add(
                (*setting.path, *path),
                f"locality {locality} wildcard '*' number can not exceed 1 and must be in the end",
            )
            continue
        if len(parts) > 3 or any(not part for part in parts):
            setting.problems.add(
                (*setting.path, *path), f"locality {locality} must not contain empty region/zone/subzone info"
            )
            continue
        if any(_overlap(parts, other) for other in seen):
            setting.problems.add((*setting.path, *path), f"locality {locality} overlap with previous specified ones")
            continue
        seen.append(parts)


def _overlap(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    """Whether one locality pattern covers (part of) the other: equal up to the shorter one's length or a ``*``."""
    for one, other in zip(first, second, strict=False):
        if one == "*" or other == "*":
            return True
        if one != other:
            return False
    return True


def _failover(setting: Fields) -> tuple[LocalityFailover, ...]:
    out: list[LocalityFailover] = []
    for entry in setting.mappings("failover", known=("from", "to"), message="LocalityLoadBalancerSetting.Failover"):
        source = entry.string("from", required=True) or ""
        target = entry.string("to", required=True) or ""
        if source and source == target:
            entry.report(None, "locality lb failover settings must specify different regions")
        if "/" in source or "/" in target:
            entry.report(None, "locality lb failover only specify region")
        if "*" in source or "*" in target:
            entry.report(None, "locality lb failover region should not contain '*' wildcard")
        out.append(LocalityFailover(from_=source, to=target))
    return tuple(out)
