"""AuthorizationPolicy -> Envoy RBAC (``envoy.config.rbac.v3``): Istio's ``authz/model`` and ``authz/builder``.

Pure functions: the policies of one action become one :class:`RBAC` config, one Envoy policy per rule, named as
Istio names them (``ns[<ns>]-policy[<name>]-rule[<i>]``; CUSTOM rules get the ``istio-ext-authz-`` prefix that the
ext_authz filter's ``filter_enabled_metadata`` looks for). A policy without rules gets one policy that never matches
(``rule[0]``), so an ALLOW policy without rules denies everything and a DENY/AUDIT one changes nothing.

Listeners are built per proxy on every push, and a mesh-wide policy applies to every proxy: each rule is compiled
once per (rule, action, TCP or not, port translation), keyed by value (rules are frozen tuples, so a changed rule is
a new key and nothing stale comes back), in a bounded LRU cache; only the Istio names are put on per call.

One rule is Istio's model: a list of principals (one per ``from`` entry, else one) and a list of permissions (one per
``to`` entry, else one), each an AND of the fields set, in Istio's order; within a field the values are ORed, and
the ``not*`` values become ``not_id``/``not_rule`` of their OR. ``when`` conditions are appended to every principal
(source-side keys) or every permission (destination-side keys). Nothing set: ``any: true``. Per field:

- ``principals``: ``authenticated.principal_name``, ``spiffe://<value>`` exact, or prefix for ``abc*``, regex
  ``spiffe://.*abc`` for ``*abc``, and ``.+`` for ``*`` (any authenticated peer, Istio's matcher);
- ``namespaces``: principal name regex ``.*/ns/<ns>/.*`` (``*`` becomes ``.*``);
- ``ipBlocks`` / ``remoteIpBlocks``: ``direct_remote_ip`` / ``remote_ip`` CIDR ranges (an address is a /32 or /128);
- ``serviceAccounts``: principal name regex ``spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`` (Istio's; ``<ns>`` is the
  policy's namespace when the value has none);
- ``requestPrincipals``: the verified token's payload in ``envoy.filters.http.jwt_authn``'s dynamic metadata (key
  ``payload``, written by the RequestAuthentication filter, ``jwt_authn.py``), as Istio generates it with stock
  Envoy: ``<iss>/<sub>`` split at the last ``/``, an AND of ``payload.iss`` and ``payload.sub`` matchers (as
  ``sourced_metadata``). Without a valid token there is no payload: such values never match;
- ``hosts``: the ``:authority`` header, case-insensitive, prefix/suffix forms, ``*`` = present;
- ``methods``: the ``:method`` header (``*`` = present); ``paths``: ``url_path`` exact/prefix/suffix, ``*`` = any;
- ``ports``: ``destination_port``, after the caller's port translation (see ``authz_filters``);
- ``when``: ``request.headers[x]`` -> header ``x``; ``source.ip`` -> ``direct_remote_ip``; ``remote.ip`` ->
  ``remote_ip``; ``source.namespace`` / ``source.principal`` as ``namespaces`` / ``principals``;
  ``request.auth.principal`` as ``requestPrincipals``; ``request.auth.audiences`` / ``presenter`` /
  ``claims[a][b]`` -> the payload's ``aud`` / ``azp`` / ``a.b``, matching a string claim or one value of a list
  claim (Istio's extended JWT matcher, an ``or_match`` of both);
  ``destination.ip`` -> ``destination_ip``; ``destination.port`` -> ``destination_port``; ``connection.sni`` ->
  ``requested_server_name``. The keys come from ``pilot.config.authz_conditions``, the table validation reads
  them with: every key that passes validation has a generator here (checked at import), so no rule is ever
  skipped for its key.

TCP (network RBAC filter, ``for_tcp``): hosts, methods, paths, requestPrincipals, request headers and
``request.auth.*`` are HTTP only. As Istio's ``checkError``: in an ALLOW config a rule using any of them is dropped
entirely (fail closed: smaller allow); in DENY, AUDIT (LOG) and CUSTOM configs the field using them is left out
whole, which makes the rule wider (more denying), never narrower. Values that do not parse (a bad CIDR or port)
cannot pass validation; they would follow the same rule.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import structlog
from envoy.config.core.v3.address_pb2 import CidrRange
from envoy.config.rbac.v3.rbac_pb2 import RBAC, Permission, Policy, Principal, SourcedMetadata
from envoy.config.route.v3.route_components_pb2 import HeaderMatcher
from envoy.type.matcher.v3.metadata_pb2 import MetadataMatcher
from envoy.type.matcher.v3.path_pb2 import PathMatcher
from envoy.type.matcher.v3.regex_pb2 import RegexMatcher
from envoy.type.matcher.v3.string_pb2 import StringMatcher
from envoy.type.matcher.v3.value_pb2 import ListMatcher, OrMatcher, ValueMatcher

from pilot.config.authz_conditions import ConditionKey, ConditionKind, parse_condition_key
from pilot.config.types import AuthorizationOperation, AuthorizationPolicy, AuthorizationRule, AuthorizationSource

__all__ = [
    "COMPILED_RULES_CACHE_SIZE",
    "EXT_AUTHZ_MATCH_PREFIX",
    "JWT_AUTHN_FILTER",
    "JWT_PAYLOAD_METADATA_KEY",
    "RbacAction",
    "build_policy",
    "build_rbac",
    "compiled_condition_kinds",
    "policy_name",
    "request_principal",
    "service_account_regex",
    "string_matcher",
]

log = structlog.get_logger(__name__)

JWT_AUTHN_FILTER = "envoy.filters.http.jwt_authn"  # its dynamic metadata namespace holds the verified payload
JWT_PAYLOAD_METADATA_KEY = "payload"  # Istio's EnvoyJwtFilterPayload: the jwt_authn providers' payload_in_metadata
EXT_AUTHZ_MATCH_PREFIX = "istio-ext-authz"  # CUSTOM policy names start with it; ext_authz is enabled on it
SPIFFE_PREFIX = "spiffe://"
COMPILED_RULES_CACHE_SIZE = 4096  # distinct (rule, action, for_tcp, ports) compilations kept (least recently used go)

RbacAction = Literal["ALLOW", "DENY", "LOG"]
_ACTIONS: dict[RbacAction, RBAC.Action.ValueType] = {"ALLOW": RBAC.ALLOW, "DENY": RBAC.DENY, "LOG": RBAC.LOG}

_ANY_VALUE = StringMatcher(safe_regex=RegexMatcher(regex=".+"))
_JWT_CLAIM_PATHS = {"request.auth.audiences": ("aud",), "request.auth.presenter": ("azp",)}

_MATCH_NEVER = Policy(
    permissions=[Permission(not_rule=Permission(any=True))],
    principals=[Principal(not_id=Principal(any=True))],
)


class _Unusable(ValueError):
    """A value that cannot be expressed here: HTTP only on a TCP chain, or unparsable."""


def policy_name(namespace: str, name: str, rule: int, *, custom: bool = False) -> str:
    """Istio ``policyName``: ``ns[foo]-policy[httpbin]-rule[0]``, prefixed ``istio-ext-authz-`` for CUSTOM."""
    prefix = f"{EXT_AUTHZ_MATCH_PREFIX}-" if custom else ""
    return f"{prefix}ns[{namespace}]-policy[{name}]-rule[{rule}]"


# ------------------------------------------------------------------------------------------------ matchers


def string_matcher(value: str, prefix: str = "", *, ignore_case: bool = False) -> StringMatcher:
    """Istio ``StringMatcherWithPrefix``: ``*`` any (``.+``), ``*abc`` suffix, ``abc*`` prefix, else exact; with a
    ``prefix`` to prepend, ``*abc`` becomes the regex ``<prefix>.*abc`` (``*`` alone ignores the prefix)."""
    if value == "*":
        return StringMatcher(safe_regex=RegexMatcher(regex=".+"))
    if value.startswith("*"):
        if prefix:
            return StringMatcher(safe_regex=RegexMatcher(regex=f"{prefix}.*{value[1:]}"))
        return StringMatcher(suffix=value[1:], ignore_case=ignore_case)
    if value.endswith("*"):
        return StringMatcher(prefix=prefix + value[:-1], ignore_case=ignore_case)
    return StringMatcher(exact=prefix + value, ignore_case=ignore_case)


def _header(name: str, value: str, *, ignore_case: bool = False) -> HeaderMatcher:
    """Istio ``HeaderMatcher`` / ``HostMatcher``: ``*`` means the header is present."""
    if value == "*":
        return HeaderMatcher(name=name, present_match=True)
    return HeaderMatcher(name=name, string_match=string_matcher(value, ignore_case=ignore_case))


def _cidr(value: str) -> CidrRange:
    """Istio ``AddrStrToCidrRange``: an address is a full-length prefix; the address part is kept as written."""
    try:
        interface = ipaddress.ip_interface(value.strip())
    except ValueError:
        raise _Unusable(f"invalid IP address or CIDR {value!r}") from None
    return CidrRange(address_prefix=str(interface.ip), prefix_len={"value": interface.network.prefixlen})


def _jwt_metadata(path: Sequence[str], value: ValueMatcher) -> MetadataMatcher:
    """A matcher on the verified token's payload, which ``jwt_authn`` writes to its dynamic metadata under
    ``payload`` (``payload_in_metadata``): Istio's ``MetadataValueMatcherForJWTClaim``."""
    segments = [MetadataMatcher.PathSegment(key=key) for key in (JWT_PAYLOAD_METADATA_KEY, *path)]
    return MetadataMatcher(filter=JWT_AUTHN_FILTER, path=segments, value=value)


def _jwt_principal(path: Sequence[str], value: ValueMatcher) -> Principal:
    """A principal on the request's dynamic metadata: ``sourced_metadata`` (source DYNAMIC), Envoy's replacement
    for the deprecated ``Principal.metadata`` that Istio's generator still writes; same match."""
    return Principal(sourced_metadata=SourcedMetadata(metadata_matcher=_jwt_metadata(path, value)))


def _claim_principal(path: Sequence[str], value: StringMatcher) -> Principal:
    """Istio ``MetadataListValueMatcherForJWTClaims`` (extended JWT): a claim that is the string, or a list holding
    it (``aud``, ``groups``, and ``scope`` split on spaces by ``normalize_payload_in_metadata``)."""
    string = ValueMatcher(string_match=value)
    either = ValueMatcher(
        or_match=OrMatcher(value_matchers=[ValueMatcher(list_match=ListMatcher(one_of=string)), string])
    )
    return _jwt_principal(path, either)


def request_principal(value: str) -> Principal:
    """Istio ``requestPrincipalGenerator``: ``<iss>/<sub>`` split at the last ``/`` (an issuer may be a URL), each
    half matched on the payload's ``iss`` and ``sub``; ``*`` alone is any token, ``*x`` / ``x*`` a suffix / prefix
    on the half that holds the star."""
    issuer, found, subject = value.rpartition("/")
    if not found:
        issuer, subject = value, ""
    match_issuer, match_subject = _ANY_VALUE, _ANY_VALUE
    if value == "*":
        pass
    elif value.startswith("*"):
        if found:
            match_issuer = _ANY_VALUE if issuer == "*" else StringMatcher(suffix=issuer[1:])
            match_subject = StringMatcher(exact=subject)
        else:
            match_subject = StringMatcher(suffix=value[1:])
    elif value.endswith("*"):
        if found:
            match_issuer = StringMatcher(exact=issuer)
            match_subject = _ANY_VALUE if subject == "*" else StringMatcher(prefix=subject[:-1])
        else:
            match_issuer = StringMatcher(prefix=value[:-1])
    else:
        match_issuer, match_subject = StringMatcher(exact=issuer), StringMatcher(exact=subject)
    return Principal(
        and_ids=Principal.Set(
            ids=[
                _jwt_principal(["iss"], ValueMatcher(string_match=match_issuer)),
                _jwt_principal(["sub"], ValueMatcher(string_match=match_subject)),
            ]
        )
    )


def service_account_regex(namespace: str, value: str) -> str:
    """Istio ``serviceAccountRegex``: ``<sa>`` (in ``namespace``, the policy's) or ``<ns>/<sa>``, matched on the
    peer's SPIFFE ID with any trust domain and any path segments between and after."""
    ns, _, name = value.rpartition("/")
    return f"spiffe://.+/ns/{re.escape(ns or namespace)}/(.+/|)sa/{re.escape(name)}(/.+)?"


def _port(value: str | int, ports: Mapping[int, int]) -> int:
    try:
        port = int(value)
    except ValueError:
        raise _Unusable(f"invalid port {value!r}") from None
    if not 0 <= port <= 65535:
        raise _Unusable(f"port {port} out of range")
    return ports.get(port, port)


def _http_only(key: str, for_tcp: bool) -> None:
    if for_tcp:
        raise _Unusable(f"{key!r} is HTTP only")


# ------------------------------------------------------------------------------------------------ generators

# A generator turns one value into a principal or a permission, or raises _Unusable.
_Generate = Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class _Field:
    """One AND member of a principal or permission: a key with its values and not-values."""

    key: str
    values: tuple[str, ...]
    not_values: tuple[str, ...]
    generate: _Generate


@dataclass(frozen=True, slots=True, kw_only=True)
class _Context:
    for_tcp: bool
    ports: Mapping[int, int]
    namespace: str = ""  # the policy's: a service account without one is in it


def _principal_generators(ctx: _Context) -> dict[str, _Generate]:
    def principal(value: str) -> Principal:
        return Principal(authenticated=Principal.Authenticated(principal_name=string_matcher(value, SPIFFE_PREFIX)))

    def namespace(value: str) -> Principal:
        regex = f".*/ns/{value.replace('*', '.*')}/.*"
        return Principal(
            authenticated=Principal.Authenticated(principal_name=StringMatcher(safe_regex={"regex": regex}))
        )

    def request_auth_principal(value: str) -> Principal:
        _http_only("request.auth.principal", ctx.for_tcp)
        return request_principal(value)

    def claim(key: str) -> _Generate:
        def generate(value: str) -> Principal:
            _http_only(key, ctx.for_tcp)
            return _claim_principal(_JWT_CLAIM_PATHS[key], string_matcher(value))

        return generate

    return {
        "source.principal": principal,
        "source.namespace": namespace,
        "source.ip": lambda value: Principal(direct_remote_ip=_cidr(value)),
        "remote.ip": lambda value: Principal(remote_ip=_cidr(value)),
        "request.auth.principal": request_auth_principal,
        "request.auth.audiences": claim("request.auth.audiences"),
        "request.auth.presenter": claim("request.auth.presenter"),
    }


def _permission_generators(ctx: _Context) -> dict[str, _Generate]:
    def host(value: str) -> Permission:
        _http_only("hosts", ctx.for_tcp)
        return Permission(header=_header(":authority", value, ignore_case=True))

    def method(value: str) -> Permission:
        _http_only("methods", ctx.for_tcp)
        return Permission(header=_header(":method", value))

    def path(value: str) -> Permission:
        _http_only("paths", ctx.for_tcp)
        return Permission(url_path=PathMatcher(path=string_matcher(value)))

    return {
        "hosts": host,
        "methods": method,
        "paths": path,
        "destination.port": lambda value: Permission(destination_port=_port(value, ctx.ports)),
        "destination.ip": lambda value: Permission(destination_ip=_cidr(value)),
        "connection.sni": lambda value: Permission(requested_server_name=string_matcher(value)),
    }


def _condition_generators(
    ctx: _Context, principals: dict[str, _Generate], permissions: dict[str, _Generate]
) -> dict[ConditionKind, Callable[[ConditionKey], tuple[str, _Generate]]]:
    """One generator per condition kind: ("principal" | "permission", value -> message)."""

    def header(parsed: ConditionKey) -> tuple[str, _Generate]:
        def generate(value: str) -> Principal:
            _http_only(parsed.kind.value, ctx.for_tcp)
            return Principal(header=_header(parsed.names[0], value))

        return "principal", generate

    def claims(parsed: ConditionKey) -> tuple[str, _Generate]:
        def generate(value: str) -> Principal:
            _http_only(parsed.kind.value, ctx.for_tcp)
            return _claim_principal(parsed.names, string_matcher(value))

        return "principal", generate

    def principal(parsed: ConditionKey) -> tuple[str, _Generate]:
        return "principal", principals[parsed.kind.value]

    def permission(parsed: ConditionKey) -> tuple[str, _Generate]:
        return "permission", permissions[parsed.kind.value]

    return {
        ConditionKind.REQUEST_HEADER: header,
        ConditionKind.AUTH_CLAIMS: claims,
        ConditionKind.SOURCE_IP: principal,
        ConditionKind.REMOTE_IP: principal,
        ConditionKind.SOURCE_NAMESPACE: principal,
        ConditionKind.SOURCE_PRINCIPAL: principal,
        ConditionKind.AUTH_PRINCIPAL: principal,
        ConditionKind.AUTH_AUDIENCES: principal,
        ConditionKind.AUTH_PRESENTER: principal,
        ConditionKind.DESTINATION_IP: permission,
        ConditionKind.DESTINATION_PORT: permission,
        ConditionKind.CONNECTION_SNI: permission,
    }


def compiled_condition_kinds() -> frozenset[ConditionKind]:
    """The condition kinds this compiler has a generator for: every kind (checked below, at import)."""
    ctx = _Context(for_tcp=False, ports={})
    return frozenset(_condition_generators(ctx, _principal_generators(ctx), _permission_generators(ctx)))


if compiled_condition_kinds() != frozenset(ConditionKind):  # validation accepts every kind: each must compile
    raise ImportError(f"rbac.py compiles no condition of kind {set(ConditionKind) - compiled_condition_kinds()}")


def _condition_generator(
    key: str, ctx: _Context, principals: dict[str, _Generate], permissions: dict[str, _Generate]
) -> tuple[str, _Generate]:
    """``when`` key -> ("principal" | "permission", generator). Validation read the key with the same
    ``parse_condition_key``, so a key that does not parse here never passed validation; should one come anyway
    (a rule built without validation), it fails closed as an unusable value does: an ALLOW rule is left out, a
    DENY/AUDIT/CUSTOM rule loses the condition and matches more."""
    parsed = parse_condition_key(key)
    if isinstance(parsed, str):
        log.warning("authorization_condition_not_compiled", key=key, reason=parsed)

        def unusable(value: str) -> Any:
            raise _Unusable(parsed)

        return "principal", unusable
    return _condition_generators(ctx, principals, permissions)[parsed.kind](parsed)


def _source_fields(source: AuthorizationSource, gen: dict[str, _Generate], ctx: _Context) -> list[_Field]:
    """Istio's order: principals, requestPrincipals, namespaces, remoteIpBlocks, ipBlocks."""

    def request_principal_field(value: str) -> Principal:
        _http_only("requestPrincipals", ctx.for_tcp)
        return request_principal(value)

    def service_account(value: str) -> Principal:
        regex = StringMatcher(safe_regex=RegexMatcher(regex=service_account_regex(ctx.namespace, value)))
        return Principal(authenticated=Principal.Authenticated(principal_name=regex))

    return [
        _Field("principals", source.principals, source.not_principals, gen["source.principal"]),
        _Field("serviceAccounts", source.service_accounts, source.not_service_accounts, service_account),
        _Field("requestPrincipals", source.request_principals, source.not_request_principals, request_principal_field),
        _Field("namespaces", source.namespaces, source.not_namespaces, gen["source.namespace"]),
        _Field("remoteIpBlocks", source.remote_ip_blocks, source.not_remote_ip_blocks, gen["remote.ip"]),
        _Field("ipBlocks", source.ip_blocks, source.not_ip_blocks, gen["source.ip"]),
    ]


def _operation_fields(operation: AuthorizationOperation, gen: dict[str, _Generate]) -> list[_Field]:
    """Istio's order: hosts, methods, paths, ports."""
    return [
        _Field("hosts", operation.hosts, operation.not_hosts, gen["hosts"]),
        _Field("methods", operation.methods, operation.not_methods, gen["methods"]),
        _Field("paths", operation.paths, operation.not_paths, gen["paths"]),
        _Field(
            "ports",
            tuple(str(p) for p in operation.ports),
            tuple(str(p) for p in operation.not_ports),
            gen["destination.port"],
        ),
    ]


# ------------------------------------------------------------------------------------------------ assembly


def _values(field: _Field, values: Iterable[str], action: RbacAction) -> list[Any] | None:
    """The field's values as messages; None when one cannot be used here (HTTP only on TCP). Istio's
    ``checkError``: for ALLOW that fails the whole rule (raises: the rule is left out, allowing less); for DENY,
    AUDIT and CUSTOM the caller leaves the whole field out, so the rule matches more, never less."""
    try:
        return [field.generate(value) for value in values]
    except _Unusable:
        if action == "ALLOW":
            raise
        return None


def _all_of(kind: Any, fields: Sequence[_Field], action: RbacAction) -> Any:
    """A Permission or Principal (``kind``): the AND of each field's OR of values and NOT(OR of not-values);
    ``any`` when nothing is left. The two messages differ only in their field names (``rules`` / ``ids``)."""
    many, one = ("rules", "rule") if kind is Permission else ("ids", "id")
    members: list[Any] = []
    for field in fields:
        for values, negate in ((field.values, False), (field.not_values, True)):
            generated = _values(field, values, action)
            if generated:
                either = kind(**{f"or_{many}": kind.Set(**{many: generated})})
                members.append(kind(**{f"not_{one}": either}) if negate else either)
    return kind(**{f"and_{many}": kind.Set(**{many: members or [kind(any=True)]})})


def build_policy(
    rule: AuthorizationRule,
    *,
    action: RbacAction,
    for_tcp: bool = False,
    ports: Mapping[int, int] | None = None,
    namespace: str = "",
) -> Policy:
    """One rule as an Envoy policy (Istio ``Model.Generate``). ``ports`` maps a policy port (a workload port) to the
    port Envoy sees as ``destination_port``; ``namespace`` is the policy's (for ``serviceAccounts`` without one).
    Raises ValueError when the rule is left out: an unknown ``when`` key, or (ALLOW only) a value that cannot be
    used here, such as an HTTP-only field on TCP."""
    ctx = _Context(for_tcp=for_tcp, ports=ports or {}, namespace=namespace)
    principal_gen = _principal_generators(ctx)
    permission_gen = _permission_generators(ctx)
    base_principal: list[_Field] = []
    base_permission: list[_Field] = []
    for condition in rule.when:
        side, generate = _condition_generator(condition.key, ctx, principal_gen, permission_gen)
        field = _Field(condition.key, condition.values, condition.not_values, generate)
        if field.values or field.not_values:
            (base_principal if side == "principal" else base_permission).append(field)
    principal_lists = [
        [*(f for f in _source_fields(s, principal_gen, ctx) if f.values or f.not_values), *base_principal]
        for s in rule.sources
    ] or [base_principal]
    permission_lists = [
        [*(f for f in _operation_fields(o, permission_gen) if f.values or f.not_values), *base_permission]
        for o in rule.operations
    ] or [base_permission]
    return Policy(
        permissions=[_all_of(Permission, fields, action) for fields in permission_lists],
        principals=[_all_of(Principal, fields, action) for fields in principal_lists],
    )


def _names_service_accounts(rule: AuthorizationRule) -> bool:
    return any(source.service_accounts or source.not_service_accounts for source in rule.sources)


@lru_cache(maxsize=COMPILED_RULES_CACHE_SIZE)
def _compiled_rule(
    rule: AuthorizationRule, action: RbacAction, for_tcp: bool, ports: tuple[tuple[int, int], ...], namespace: str
) -> bytes | str:
    """``build_policy``, serialized, for a rule and its compile options: keyed by value (rules are frozen tuples), so
    an equal rule in any proxy, port or snapshot gets the same bytes and a changed rule is a different key. A str:
    why an ALLOW rule is left out (an HTTP-only field on TCP)."""
    try:
        policy = build_policy(rule, action=action, for_tcp=for_tcp, ports=dict(ports), namespace=namespace)
    except _Unusable as exc:
        return str(exc)
    serialized: bytes = policy.SerializeToString(deterministic=True)
    return serialized


def build_rbac(
    policies: Iterable[AuthorizationPolicy],
    *,
    action: RbacAction,
    for_tcp: bool = False,
    ports: Mapping[int, int] | None = None,
    custom: bool = False,
) -> RBAC:
    """The policies as one RBAC config with ``action`` (Istio ``Builder.build``); ``custom``: CUSTOM policies, named
    with the ext_authz prefix. Only an ALLOW rule using an HTTP-only field on TCP is left out (Istio's fail
    closed: it allows less; logged at debug level). Each rule is compiled once per (rule, action, for_tcp,
    ports), however many proxies and pushes need it (``_compiled_rule``)."""
    rbac = RBAC(action=_ACTIONS[action])
    port_pairs = tuple(sorted((ports or {}).items()))
    for policy in policies:
        key = policy.meta.key
        if not policy.rules:
            rbac.policies[policy_name(key.namespace, key.name, 0, custom=custom)].CopyFrom(_MATCH_NEVER)
        for index, rule in enumerate(policy.rules):
            # the namespace is part of the key only where it changes the output (service accounts without one)
            namespace = key.namespace if _names_service_accounts(rule) else ""
            compiled = _compiled_rule(rule, action, for_tcp, port_pairs, namespace)
            if isinstance(compiled, bytes):
                rbac.policies[policy_name(key.namespace, key.name, index, custom=custom)].MergeFromString(compiled)
            else:
                log.debug("authorization_rule_skipped", policy=str(key), rule=index, tcp=for_tcp, reason=compiled)
    return rbac
