"""The authorization filters of one inbound port of a sidecar (Istio ``authz/builder`` and its place in the chain).

HTTP ports get, before fault injection and the router, in Istio's order:

1. CUSTOM / Mixer: an RBAC filter evaluating the CUSTOM policies' rules as *shadow* rules (stat and metadata prefix
   ``istio_ext_authz_``), then ``envoy.filters.http.ext_authz`` calling Mixer (cluster ``mixer``) only when a shadow
   rule matched (``filter_enabled_metadata`` on ``istio_ext_authz_shadow_effective_policy_id`` starting with
   ``istio-ext-authz``), exactly as Istio does for a CUSTOM provider. When an AccessList or RateLimit selects the
   workload, Mixer must see every request, so ext_authz has no ``filter_enabled_metadata``;
2. AUDIT policies: RBAC with action LOG (Istio puts it before DENY, so that denied requests are audited too);
3. DENY policies: RBAC DENY;
4. ALLOW policies: RBAC ALLOW, only when some ALLOW policy applies (with policies but no usable rule it denies all).

ext_authz: gRPC to ``mixer`` with a 0.5 s timeout, v3 API, ``failure_mode_allow`` only when every Mixer policy of the
workload says ``failOpen`` (and no CUSTOM policy), 403 when Mixer cannot answer, no body, no peer certificate (the
peer's SPIFFE ID is in the CheckRequest anyway).

Ports: an AuthorizationPolicy's ``ports`` (and ``destination.port``) are workload ports, as in Istio, where the
inbound listener sees the app's own port. Mesh clients dial the pod IP at the *service* port (the EDS endpoint is
``address:service-port``), and virtualInbound's chain for that port forwards to the app's target port, so Envoy's
``destination_port`` there is the service port: on that chain a policy port equal to the instance's target port is
translated to the service port (a policy port equal to the service port already matches it and is kept). The
chain for the app's own port (clients that dial it) matches policy ports as written.

Missing Mixer: a sidecar whose bootstrap has no ``mixer`` cluster (node metadata ``MESHPLANE_MIXER`` not "true")
cannot call it; a reference to the cluster would be rejected. As Istio with an unknown CUSTOM provider, the port
fails closed instead: an RBAC DENY of what the CUSTOM rules would have sent to the provider
(``...-deny-due-to-bad-CUSTOM-action``), or of everything when Mixer policies select the workload, unless they all
fail open. Logged once per proxy.

TCP ports: network RBAC filters (AUDIT, DENY, ALLOW; stat prefix ``tcp.``) before tcp_proxy, with Istio's TCP rules
for HTTP-only fields (``rbac.py``). CUSTOM policies naming a MeshConfig gRPC provider get, as in Istio, a shadow
network RBAC of their rules and Envoy's network ext_authz calling the provider when one matched; an HTTP provider
cannot check a connection (Istio skips the check; meshplane denies what it would check). Mixer answers HTTP checks
only, so CUSTOM rules naming ``mixer`` and Mixer policies on a TCP port fail closed as above. Each with a warning
once per proxy.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import structlog
from envoy.config.core.v3.config_source_pb2 import ApiVersion
from envoy.config.core.v3.grpc_service_pb2 import GrpcService
from envoy.config.listener.v3.listener_components_pb2 import Filter
from envoy.config.rbac.v3.rbac_pb2 import RBAC, Permission, Policy, Principal
from envoy.extensions.filters.http.ext_authz.v3.ext_authz_pb2 import ExtAuthz
from envoy.extensions.filters.http.rbac.v3.rbac_pb2 import RBAC as HttpRBAC
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import HttpFilter
from envoy.extensions.filters.network.rbac.v3.rbac_pb2 import RBAC as NetworkRBAC
from envoy.type.v3.http_status_pb2 import HttpStatus, StatusCode

from meshplane import names
from meshplane.mixer_names import MIXER_CLUSTER
from pilot.generate._protos import http_filter, network_filter
from pilot.generate.access_logs import has_mixer
from pilot.generate.ext_authz import (
    EXT_AUTHZ_SHADOW_PREFIX,
    custom_rules_matched,
    provider_ext_authz,
    provider_network_ext_authz,
)
from pilot.generate.rbac import build_rbac
from pilot.model.policies import MIXER_PROVIDER, WorkloadPolicies, workload_policies
from pilot.model.types import MeshSnapshot, Proxy, ServiceInstance

__all__ = [
    "BAD_CUSTOM_SUFFIX",
    "EXT_AUTHZ_SHADOW_PREFIX",
    "EXT_AUTHZ_TIMEOUT_SECONDS",
    "MIXER_DENY_ALL_POLICY",
    "MIXER_EXT_AUTHZ_FILTER",
    "RBAC_TCP_STAT_PREFIX",
    "build_ext_authz",
    "build_http_authz_filters",
    "build_network_authz_filters",
    "policy_ports",
]

log = structlog.get_logger(__name__)

EXT_AUTHZ_TIMEOUT_SECONDS = 0.5
RBAC_TCP_STAT_PREFIX = "tcp."  # Istio's RBACTCPFilterStatPrefix
BAD_CUSTOM_SUFFIX = "-deny-due-to-bad-CUSTOM-action"  # Istio's name for CUSTOM rules denied for want of a provider
MIXER_DENY_ALL_POLICY = "default-deny-all-due-to-missing-mixer"
MIXER_EXT_AUTHZ_FILTER = "meshplane.mixer.ext_authz"  # Mixer's ext_authz beside a CUSTOM provider's on one chain

_warned: set[tuple[str, str]] = set()  # (proxy id, reason) already warned about


def policy_ports(instance: ServiceInstance) -> dict[int, int]:
    """Policy (workload) port -> the port Envoy sees on this instance's listener (see the module doc)."""
    return {instance.target_port: instance.port.number}


def build_ext_authz(*, fail_open: bool, every_request: bool) -> ExtAuthz:
    """Envoy's ext_authz calling Mixer (see the module doc); ``every_request``: no ``filter_enabled_metadata``."""
    config = ExtAuthz(
        grpc_service=GrpcService(
            envoy_grpc=GrpcService.EnvoyGrpc(cluster_name=MIXER_CLUSTER),
            timeout=timedelta(seconds=EXT_AUTHZ_TIMEOUT_SECONDS),
        ),
        transport_api_version=ApiVersion.V3,
        failure_mode_allow=fail_open,
        status_on_error=HttpStatus(code=StatusCode.Forbidden),
        include_peer_certificate=False,
    )
    if not every_request:
        config.filter_enabled_metadata.CopyFrom(custom_rules_matched())
    return config


def _deny_all() -> RBAC:
    return RBAC(
        action=RBAC.DENY,
        policies={MIXER_DENY_ALL_POLICY: Policy(permissions=[Permission(any=True)], principals=[Principal(any=True)])},
    )


def _bad_custom(policies: WorkloadPolicies, *, for_tcp: bool, ports: dict[int, int]) -> RBAC:
    """Istio ``getBadCustomDenyRules``: the CUSTOM rules, renamed, as a DENY config; everything for Mixer policies."""
    if policies.mixer and not policies.mixer_fail_open:
        return _deny_all()
    custom = build_rbac(policies.custom, action="DENY", for_tcp=for_tcp, ports=ports, custom=True)
    denied = RBAC(action=RBAC.DENY)
    for name in sorted(custom.policies):
        denied.policies[name + BAD_CUSTOM_SUFFIX].CopyFrom(custom.policies[name])
    return denied


def _warn_once(proxy: Proxy, reason: str, **fields: object) -> None:
    marker = (proxy.node.id, reason)
    if marker not in _warned:
        _warned.add(marker)
        log.warning("mixer_checks_fail_closed", proxy=proxy.node.id, reason=reason, **fields)


def _mixer_usable(proxy: Proxy, policies: WorkloadPolicies) -> bool:
    """Whether ext_authz can call Mixer for this proxy; warns (once) when it should but cannot."""
    if not has_mixer(proxy):
        _warn_once(
            proxy,
            "no mixer cluster",
            detail="policies need Mixer but this sidecar was bootstrapped without --mixer: "
            + ("requests go through (every Mixer policy fails open)" if policies.mixer_fail_open else "denied"),
        )
        return False
    return True


def _rbac_configs(policies: WorkloadPolicies, *, for_tcp: bool, ports: dict[int, int]) -> list[RBAC]:
    """AUDIT (LOG), DENY, ALLOW, each only when policies of that action apply (Istio ``Builder.BuildHTTP``)."""
    configs: list[RBAC] = []
    if policies.audit:
        configs.append(build_rbac(policies.audit, action="LOG", for_tcp=for_tcp, ports=ports))
    if policies.deny:
        configs.append(build_rbac(policies.deny, action="DENY", for_tcp=for_tcp, ports=ports))
    if policies.allow:
        configs.append(build_rbac(policies.allow, action="ALLOW", for_tcp=for_tcp, ports=ports))
    return configs


def _policies(proxy: Proxy, snapshot: MeshSnapshot) -> WorkloadPolicies | None:
    if proxy.workload is None:
        return None
    policies = workload_policies(snapshot, proxy.workload)
    return None if policies.empty else policies


def _shadow_rbac(policies: WorkloadPolicies, ports: dict[int, int]) -> HttpFilter:
    """The CUSTOM rules as shadow rules: their result tells ext_authz whether to call the provider."""
    shadow = build_rbac(policies.custom, action="DENY", ports=ports, custom=True)
    return http_filter(
        names.RBAC_FILTER, HttpRBAC(shadow_rules=shadow, shadow_rules_stat_prefix=EXT_AUTHZ_SHADOW_PREFIX)
    )


def _extension_provider_filters(
    proxy: Proxy, policies: WorkloadPolicies, snapshot: MeshSnapshot, ports: dict[int, int]
) -> list[HttpFilter]:
    """CUSTOM policies naming a MeshConfig extension provider: shadow RBAC + ext_authz calling it; when it cannot
    be called (several providers, unknown provider or service), the CUSTOM rules deny instead. Mixer policies of
    the workload then get their own ext_authz to Mixer (``MIXER_EXT_AUTHZ_FILTER``)."""
    providers = sorted({p.provider or "" for p in policies.custom})
    try:
        if len(providers) > 1:
            raise LookupError(f"only 1 provider can be used per workload, found multiple providers: {providers}")
        filters = [
            _shadow_rbac(policies, ports),
            http_filter(names.EXT_AUTHZ_FILTER, provider_ext_authz(providers[0], snapshot)),
        ]
    except LookupError as exc:
        _warn_once(
            proxy, "unusable CUSTOM provider", providers=providers, detail=f"{exc}: the CUSTOM rules deny instead"
        )
        filters = [
            http_filter(
                names.RBAC_FILTER, HttpRBAC(rules=_bad_custom(replace(policies, mixer=()), for_tcp=False, ports=ports))
            )
        ]
    if policies.mixer:
        filters.extend(_renamed(f) for f in _mixer_filters(proxy, replace(policies, custom=()), ports))
    return filters


def _renamed(mixer_filter: HttpFilter) -> HttpFilter:
    """Mixer's ext_authz under its own name beside the provider's (one name per filter of a chain)."""
    if mixer_filter.name != names.EXT_AUTHZ_FILTER:
        return mixer_filter
    renamed = HttpFilter()
    renamed.CopyFrom(mixer_filter)
    renamed.name = MIXER_EXT_AUTHZ_FILTER
    return renamed


def _uses_extension_provider(policies: WorkloadPolicies) -> bool:
    return any(p.provider != MIXER_PROVIDER for p in policies.custom)


def _mixer_filters(proxy: Proxy, policies: WorkloadPolicies, ports: dict[int, int]) -> list[HttpFilter]:
    """CUSTOM / Mixer: the shadow RBAC of the CUSTOM rules (if any) and ext_authz; when Mixer cannot be called, the
    fail-closed DENY instead (nothing when every Mixer policy fails open)."""
    if not _mixer_usable(proxy, policies):
        if policies.mixer_fail_open:
            return []
        return [http_filter(names.RBAC_FILTER, HttpRBAC(rules=_bad_custom(policies, for_tcp=False, ports=ports)))]
    filters = [_shadow_rbac(policies, ports)] if policies.custom else []
    ext_authz = build_ext_authz(fail_open=policies.mixer_fail_open, every_request=bool(policies.mixer))
    filters.append(http_filter(names.EXT_AUTHZ_FILTER, ext_authz))
    return filters


def build_http_authz_filters(
    proxy: Proxy, instance: ServiceInstance, snapshot: MeshSnapshot, *, ports: dict[int, int] | None = None
) -> list[HttpFilter]:
    """The HTTP filters for the inbound HTTP port of ``instance`` (see the module doc); [] without policies.
    ``ports``: policy port -> the port Envoy sees (default ``policy_ports(instance)``; ``{}`` where Envoy sees the
    workload's own port, as on a captured sidecar's chain for the app's port)."""
    policies = _policies(proxy, snapshot)
    if policies is None:
        return []
    ports = policy_ports(instance) if ports is None else ports
    if _uses_extension_provider(policies):
        filters = _extension_provider_filters(proxy, policies, snapshot, ports)
    else:
        filters = _mixer_filters(proxy, policies, ports) if policies.checks_with_mixer else []
    filters.extend(
        http_filter(names.RBAC_FILTER, HttpRBAC(rules=rules))
        for rules in _rbac_configs(policies, for_tcp=False, ports=ports)
    )
    return filters


def build_network_authz_filters(
    proxy: Proxy, instance: ServiceInstance | None, snapshot: MeshSnapshot, *, ports: dict[int, int] | None = None
) -> list[Filter]:
    """The network filters before tcp_proxy for the inbound TCP port of ``instance`` (None: a captured sidecar's
    passthrough chain, for ports no service declares); [] without policies. ``ports``: as for HTTP."""
    policies = _policies(proxy, snapshot)
    if policies is None:
        return []
    if ports is None:
        ports = policy_ports(instance) if instance is not None else {}
    filters: list[Filter] = []
    if _uses_extension_provider(policies):
        filters.extend(_network_provider_filters(proxy, policies, snapshot, ports))
        policies = replace(policies, custom=())  # checked by the provider (or denied) above
    configs: list[RBAC] = []
    if policies.checks_with_mixer and not policies.mixer_fail_open:
        _warn_once(
            proxy,
            "Mixer policies on a TCP port",
            port=instance.port.number if instance is not None else "passthrough",
            detail="Mixer answers HTTP checks only: what CUSTOM rules or Mixer policies would check is denied",
        )
        configs.append(_bad_custom(policies, for_tcp=True, ports=ports))
    configs.extend(_rbac_configs(policies, for_tcp=True, ports=ports))
    filters.extend(
        network_filter(names.RBAC_NETWORK_FILTER, NetworkRBAC(rules=rules, stat_prefix=RBAC_TCP_STAT_PREFIX))
        for rules in configs
    )
    return filters


def _network_provider_filters(
    proxy: Proxy, policies: WorkloadPolicies, snapshot: MeshSnapshot, ports: dict[int, int]
) -> list[Filter]:
    """CUSTOM policies naming a MeshConfig gRPC provider on a TCP port: the shadow network RBAC of their rules and
    the network ext_authz calling the provider (Istio); when it cannot be called (an HTTP provider, several
    providers, unknown provider or service), the CUSTOM rules deny instead."""
    custom = replace(policies, mixer=())
    providers = sorted({p.provider or "" for p in custom.custom})
    try:
        if len(providers) > 1:
            raise LookupError(f"only 1 provider can be used per workload, found multiple providers: {providers}")
        ext_authz = provider_network_ext_authz(providers[0], snapshot)
    except LookupError as exc:
        _warn_once(
            proxy,
            "unusable CUSTOM provider on TCP",
            providers=providers,
            detail=f"{exc}: the CUSTOM rules deny instead",
        )
        denied = _bad_custom(custom, for_tcp=True, ports=ports)
        return [network_filter(names.RBAC_NETWORK_FILTER, NetworkRBAC(rules=denied, stat_prefix=RBAC_TCP_STAT_PREFIX))]
    shadow = build_rbac(custom.custom, action="DENY", for_tcp=True, ports=ports, custom=True)
    return [
        network_filter(
            names.RBAC_NETWORK_FILTER,
            NetworkRBAC(
                shadow_rules=shadow, stat_prefix=RBAC_TCP_STAT_PREFIX, shadow_rules_stat_prefix=EXT_AUTHZ_SHADOW_PREFIX
            ),
        ),
        network_filter(names.EXT_AUTHZ_NETWORK_FILTER, ext_authz),
    ]
