"""What an HTTPRoute does once matched (Istio's ``route.go`` and ``route/retry``): the RouteAction (destinations,
weights, timeout, retries, rewrites, mirrors), RedirectAction, DirectResponseAction, the fault filter's per-route
config and header operations. Pure: every function builds new protobufs from config and the snapshot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from envoy.config.core.v3.base_pb2 import DataSource, HeaderValue, HeaderValueOption, RuntimeFractionalPercent
from envoy.config.route.v3.route_components_pb2 import (
    DirectResponseAction,
    RedirectAction,
    RetryPolicy,
    RouteAction,
    WeightedCluster,
)
from envoy.extensions.filters.http.fault.v3.fault_pb2 import FaultAbort, HTTPFault
from envoy.extensions.retry.host.previous_hosts.v3.previous_hosts_pb2 import PreviousHostsPredicate
from envoy.extensions.retry.priority.previous_priorities.v3.previous_priorities_config_pb2 import (
    PreviousPrioritiesConfig,
)
from envoy.type.matcher.v3.regex_pb2 import RegexMatchAndSubstitute, RegexMatcher
from envoy.type.v3.percent_pb2 import FractionalPercent

from meshplane import names
from pilot.config.types import (
    GRPC_STATUS_NAMES,
    Abort,
    Destination,
    Fault,
    Headers,
    HTTPDirectResponse,
    HTTPRedirect,
    HTTPRetry,
    HTTPRoute,
    Mirror,
)
from pilot.model import MeshSnapshot, resolve_host

__all__ = [
    "DEFAULT_RETRY_ON",
    "GRPC_STATUS_CODES",
    "HeaderMutations",
    "RouteContext",
    "ServicePorts",
    "build_direct_response",
    "build_redirect",
    "build_route_action",
    "convert_retry_policy",
    "default_retry_policy",
    "destination_cluster",
    "destination_host_port",
    "percent_to_fraction",
    "set_duration",
    "set_timeout",
    "translate_fault",
    "translate_headers",
]

log = structlog.get_logger(__name__)

DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
PREVIOUS_HOSTS_PREDICATE = "envoy.retry_host_predicates.previous_hosts"
PREVIOUS_PRIORITIES = "envoy.retry_priorities.previous_priorities"

# Istio's grpc.SupportedGRPCStatus: abort.grpcStatus is a code name; its position is the code.
GRPC_STATUS_CODES: Mapping[str, int] = {name: code for code, name in enumerate(GRPC_STATUS_NAMES)}

_REDIRECT_CODES: Mapping[int, int] = {
    301: RedirectAction.MOVED_PERMANENTLY,
    302: RedirectAction.FOUND,
    303: RedirectAction.SEE_OTHER,
    307: RedirectAction.TEMPORARY_REDIRECT,
    308: RedirectAction.PERMANENT_REDIRECT,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteContext:
    """Where a VirtualService route is being translated: its VS (namespace resolves short hosts), the virtual host's
    service port (the default destination port), the mesh's domain suffix and its services' ports. Nothing else of
    the snapshot: a route is a function of these (the resource cache keys route tables on them)."""

    vs_namespace: str
    vs_name: str
    port: int
    domain_suffix: str
    service_ports: ServicePorts


class ServicePorts:
    """The port numbers of every service host of a snapshot (a destination without a port takes its service's only
    one), with a digest: equal registries compare equal in one step, so that it can key a cache."""

    __slots__ = ("_digest", "_ports")

    def __init__(self, ports: Mapping[str, tuple[int, ...]]) -> None:
        self._ports = dict(ports)
        digest = hashlib.blake2b(digest_size=16)
        for host, numbers in sorted(self._ports.items()):
            digest.update(f"{host}|{','.join(map(str, numbers))}\n".encode())
        self._digest = digest.digest()

    @classmethod
    def of(cls, snapshot: MeshSnapshot) -> ServicePorts:
        """The snapshot's (computed once per snapshot: every proxy's listeners and route tables ask)."""
        ports: ServicePorts = snapshot.derived.get("service_ports", lambda: cls._of(snapshot))
        return ports

    @classmethod
    def _of(cls, snapshot: MeshSnapshot) -> ServicePorts:
        return cls({host: tuple(p.number for p in service.ports) for host, service in snapshot.services.items()})

    def get(self, host: str) -> tuple[int, ...]:
        return self._ports.get(host, ())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServicePorts) and other._digest == self._digest

    def __hash__(self) -> int:
        return hash(self._digest)


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderMutations:
    """Istio's ``HeadersOperations``: header changes for a route or a weighted cluster, and the authority rewrite
    asked for by setting ``:authority``/``host`` (which Envoy cannot set as a plain header)."""

    request_add: tuple[HeaderValueOption, ...] = ()
    request_remove: tuple[str, ...] = ()
    response_add: tuple[HeaderValueOption, ...] = ()
    response_remove: tuple[str, ...] = ()
    authority: str = ""

    def then(self, other: HeaderMutations) -> HeaderMutations:
        """These operations followed by ``other`` (a single destination's headers come after the route's)."""
        return HeaderMutations(
            request_add=self.request_add + other.request_add,
            request_remove=self.request_remove + other.request_remove,
            response_add=self.response_add + other.response_add,
            response_remove=self.response_remove + other.response_remove,
            authority=self.authority,
        )


def set_duration(field: Any, seconds: float) -> None:
    """Set a ``google.protobuf.Duration`` field (marking it present even for 0s) from seconds."""
    field.FromNanoseconds(round(seconds * 1e9))


def percent_to_fraction(percent: float) -> FractionalPercent:
    """0..100 (with decimals) -> FractionalPercent per MILLION, as Istio's ``translatePercentToFractionalPercent``."""
    return FractionalPercent(numerator=round(percent * 10_000), denominator=FractionalPercent.MILLION)


def _is_internal_header(name: str) -> bool:
    return name.startswith(":") or name.lower() == "host"


def _header_options(headers: Mapping[str, str], action: int) -> tuple[tuple[HeaderValueOption, ...], str]:
    authority = ""
    options: list[HeaderValueOption] = []
    for key, value in sorted(headers.items()):
        if key.lower() in (":authority", "host"):
            authority = value
        if _is_internal_header(key):
            continue
        options.append(HeaderValueOption(header=HeaderValue(key=key, value=value), append_action=action))
    return tuple(options), authority


def translate_headers(headers: Headers | None) -> HeaderMutations:
    """``set`` overwrites (or adds), ``add`` appends; each sorted by name, ``set`` first. Pseudo-headers and ``host``
    cannot be changed by Envoy header operations and are dropped; setting the authority becomes a host rewrite."""
    if headers is None:
        return HeaderMutations()
    overwrite, append = HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD, HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
    request, response = headers.request, headers.response
    req_set, set_authority = _header_options(request.set if request else {}, overwrite)
    req_add, add_authority = _header_options(request.add if request else {}, append)
    resp_set, _ = _header_options(response.set if response else {}, overwrite)
    resp_add, _ = _header_options(response.add if response else {}, append)
    return HeaderMutations(
        request_add=req_set + req_add,
        request_remove=tuple(h for h in (request.remove if request else ()) if not _is_internal_header(h)),
        response_add=resp_set + resp_add,
        response_remove=tuple(h for h in (response.remove if response else ()) if not _is_internal_header(h)),
        authority=set_authority or add_authority,
    )


def destination_cluster(destination: Destination, ctx: RouteContext) -> str:
    """Istio's ``GetDestinationCluster``: the destination's port, else its service's only port, else the port the
    request came in on (the virtual host's)."""
    host, port = destination_host_port(destination, ctx)
    return names.outbound_cluster_name(port, destination.subset, host)


def destination_host_port(destination: Destination, ctx: RouteContext) -> tuple[str, int]:
    """The FQDN and service port of :func:`destination_cluster`'s cluster."""
    host = resolve_host(destination.host, ctx.vs_namespace, ctx.domain_suffix)
    port = ctx.port
    if destination.port is not None:
        port = destination.port
    else:
        ports = ctx.service_ports.get(host)
        if len(ports) == 1:
            port = ports[0]
    return host, port


def default_retry_policy() -> RetryPolicy:
    """Istio's ``retry.DefaultPolicy()``: what every outbound route gets unless its VirtualService says otherwise."""
    policy = RetryPolicy(
        retry_on=DEFAULT_RETRY_ON,
        host_selection_retry_max_attempts=5,
        retriable_status_codes=[HTTPStatus.SERVICE_UNAVAILABLE.value],
    )
    policy.num_retries.value = 2
    predicate = policy.retry_host_predicate.add(name=PREVIOUS_HOSTS_PREDICATE)
    predicate.typed_config.Pack(PreviousHostsPredicate())
    return policy


def _parse_retry_on(retry_on: str) -> tuple[str, list[int]]:
    """Split ``retryOn`` into Envoy retry conditions and HTTP status codes (any part that is a known status)."""
    conditions: list[str] = []
    codes: list[int] = []
    for raw in retry_on.split(","):
        part = raw.strip()
        if not part:
            continue
        if part.isdigit() and int(part) in HTTPStatus._value2member_map_:
            codes.append(int(part))
        else:
            conditions.append(part)
    return ",".join(conditions), codes


def convert_retry_policy(retries: HTTPRetry | None) -> RetryPolicy | None:
    """Istio's ``retry.ConvertPolicy``: no ``retries`` -> the default policy; ``attempts: 0`` -> no retries at all;
    otherwise the default policy with the VirtualService's attempts, conditions, codes, per-try timeout, backoff
    (``retry_back_off.base_interval``) and, with ``retryIgnorePreviousHosts: false``, without the predicate that
    makes a retry prefer hosts not tried yet."""
    policy = default_retry_policy()
    if retries is None:
        return policy
    if retries.attempts <= 0:
        return None
    policy.num_retries.value = retries.attempts
    if retries.retry_on:
        conditions, codes = _parse_retry_on(retries.retry_on)
        if codes and "retriable-status-codes" not in conditions:
            conditions = f"{conditions},retriable-status-codes" if conditions else "retriable-status-codes"
        policy.retry_on = conditions
        del policy.retriable_status_codes[:]
        policy.retriable_status_codes.extend(codes)
    if retries.per_try_timeout is not None:
        set_duration(policy.per_try_timeout, retries.per_try_timeout)
    if retries.retry_remote_localities:
        priority = policy.retry_priority
        priority.name = PREVIOUS_PRIORITIES
        priority.typed_config.Pack(PreviousPrioritiesConfig(update_frequency=2))
    if retries.retry_ignore_previous_hosts is False:  # unset or true: the default policy's previous_hosts predicate
        del policy.retry_host_predicate[:]
    if retries.backoff is not None:  # Envoy's max_interval defaults to 10 times the base interval
        set_duration(policy.retry_back_off.base_interval, retries.backoff)
    return policy


def set_timeout(action: RouteAction, timeout: float | None) -> None:
    """Istio's ``setTimeout``: the VirtualService timeout, else 0s (disabled); a gRPC client's ``grpc-timeout``
    header is honoured, capped by the route timeout when there is one (0s: uncapped).

    Istio caps it with the deprecated ``max_grpc_timeout``, which Envoy 1.40 warns about on every load. Its
    replacement ``max_stream_duration.grpc_timeout_header_max`` must not be set together with a route timeout:
    Envoy then ignores ``timeout`` for HTTP/1 requests (envoyproxy/envoy#15530, seen again with 1.40: a 0.3s
    route timeout let a 3s request through). With a timeout, the route timeout alone bounds every request;
    without one, ``grpc_timeout_header_max: 0s`` lets gRPC clients' own deadlines apply, uncapped."""
    set_duration(action.timeout, timeout or 0.0)
    if not timeout:
        set_duration(action.max_stream_duration.grpc_timeout_header_max, 0.0)


def _mirror_policy(mirror: Mirror, ctx: RouteContext) -> RouteAction.RequestMirrorPolicy | None:
    if mirror.percentage is None:
        fraction = FractionalPercent(numerator=100, denominator=FractionalPercent.HUNDRED)
    elif mirror.percentage > 0:
        fraction = percent_to_fraction(mirror.percentage)
    else:
        return None  # an explicit 0% does not mirror
    policy = RouteAction.RequestMirrorPolicy(
        cluster=destination_cluster(mirror.destination, ctx),
        runtime_fraction=RuntimeFractionalPercent(default_value=fraction),
    )
    policy.trace_sampled.value = False
    return policy


def _weighted_clusters(http: HTTPRoute, ctx: RouteContext) -> WeightedCluster | None:
    weighted = WeightedCluster()
    for dest in http.route:
        if not dest.weight:
            continue  # Istio ignores 0-weight destinations of a split
        cluster = weighted.clusters.add(name=destination_cluster(dest.destination, ctx))
        cluster.weight.value = dest.weight
        mutations = translate_headers(dest.headers)
        cluster.request_headers_to_add.extend(mutations.request_add)
        cluster.request_headers_to_remove.extend(mutations.request_remove)
        cluster.response_headers_to_add.extend(mutations.response_add)
        cluster.response_headers_to_remove.extend(mutations.response_remove)
        if mutations.authority:
            cluster.host_rewrite_literal = mutations.authority
    return weighted if weighted.clusters else None


def build_route_action(
    http: HTTPRoute, ctx: RouteContext, authority: str
) -> tuple[RouteAction, HeaderMutations] | None:
    """The forwarding action of an HTTPRoute (neither redirect nor direct response), and the header operations of
    its single destination, which go on the Route after the route's own. ``authority`` comes from the route's
    header operations. ``None`` when there is nowhere to send the request."""
    action = RouteAction()
    set_timeout(action, http.timeout)
    rewrite = http.rewrite
    if rewrite is not None:
        if rewrite.uri_regex_rewrite is not None:
            action.regex_rewrite.CopyFrom(
                RegexMatchAndSubstitute(
                    pattern=RegexMatcher(regex=rewrite.uri_regex_rewrite.match),
                    substitution=rewrite.uri_regex_rewrite.rewrite,
                )
            )
        elif rewrite.uri:
            action.prefix_rewrite = rewrite.uri
        if rewrite.authority:
            authority = rewrite.authority
    if authority:
        action.host_rewrite_literal = authority
    for mirror in http.mirrors:
        policy = _mirror_policy(mirror, ctx)
        if policy is not None:
            action.request_mirror_policies.append(policy)
    destination_mutations = HeaderMutations()
    if len(http.route) == 1:
        only = http.route[0]
        action.cluster = destination_cluster(only.destination, ctx)
        destination_mutations = translate_headers(only.headers)
        # A top-level rewrite wins over the destination's, as in Istio (consistent with weighted destinations).
        if destination_mutations.authority and not action.host_rewrite_literal:
            action.host_rewrite_literal = destination_mutations.authority
    else:
        weighted = _weighted_clusters(http, ctx)
        if weighted is None:
            log.error("route_without_destination", route=http.name, virtual_service=f"{ctx.vs_namespace}/{ctx.vs_name}")
            return None
        action.weighted_clusters.CopyFrom(weighted)
    policy = convert_retry_policy(http.retries)
    if policy is not None:
        action.retry_policy.CopyFrom(policy)
    return action, destination_mutations


def build_redirect(redirect: HTTPRedirect, port: int) -> RedirectAction | None:
    """Istio's ``ApplyRedirect`` for sidecars. ``derivePort: FROM_REQUEST_PORT`` is the virtual host's port; an
    explicit :80 for http (or :443 for https) is dropped. ``None`` for a redirect code Envoy cannot send."""
    code = _REDIRECT_CODES.get(redirect.redirect_code)
    if code is None:  # unreachable: validation accepts only these codes (test_every_redirect_code_validation_...)
        log.warning("redirect_code_unsupported", redirect_code=redirect.redirect_code)
        return None
    out = RedirectAction(response_code=code)
    if redirect.authority:
        out.host_redirect = redirect.authority
    if redirect.uri:
        out.path_redirect = redirect.uri
    if redirect.scheme:
        out.scheme_redirect = redirect.scheme
    if redirect.port is not None or redirect.derive_port:
        redirect_port = 0
        if redirect.port is not None:
            redirect_port = redirect.port
        elif redirect.derive_port == "FROM_REQUEST_PORT":
            redirect_port = port
        # FROM_PROTOCOL_DEFAULT: no port, Envoy's default behaviour.
        scheme = redirect.scheme or "http"  # a sidecar never terminates TLS
        if (redirect_port, scheme) not in ((80, "http"), (443, "https")):
            out.port_redirect = redirect_port
    return out


def build_direct_response(response: HTTPDirectResponse) -> DirectResponseAction:
    out = DirectResponseAction(status=response.status)
    if response.body is not None:
        out.body.CopyFrom(DataSource(inline_string=response.body))
    return out


def translate_fault(fault: Fault) -> HTTPFault | None:
    """Istio's ``TranslateFault`` -> the fault filter's per-route config; ``None`` when nothing can be injected.
    A missing percentage means every request (Istio's API docs), written out as 100% rather than left to Envoy."""
    out = HTTPFault()
    if fault.delay is not None:
        percentage = 100.0 if fault.delay.percentage is None else fault.delay.percentage
        out.delay.percentage.CopyFrom(percent_to_fraction(percentage))
        set_duration(out.delay.fixed_delay, fault.delay.fixed_delay)
    abort = _fault_abort(fault.abort) if fault.abort is not None else None
    if abort is not None:
        out.abort.CopyFrom(abort)
    return out if (out.HasField("delay") or out.HasField("abort")) else None


def _fault_abort(abort: Abort) -> FaultAbort | None:
    out = FaultAbort()
    out.percentage.CopyFrom(percent_to_fraction(100.0 if abort.percentage is None else abort.percentage))
    if abort.http_status is not None:
        out.http_status = abort.http_status
        return out
    if abort.grpc_status is not None:
        code = GRPC_STATUS_CODES.get(abort.grpc_status.upper())
        if code is None and abort.grpc_status.isdigit():
            code = int(abort.grpc_status)
        if code is not None:
            out.grpc_status = code
            return out
    # unreachable: validation accepts only grpcStatus names with a code (test_every_grpc_status_validation_...)
    log.warning("fault_abort_unsupported", grpc_status=abort.grpc_status, http_status=abort.http_status)
    return None
