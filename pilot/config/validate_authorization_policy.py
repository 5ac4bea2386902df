"""Validate an AuthorizationPolicy spec into ``types.AuthorizationPolicy`` (Istio's ``ValidateAuthorizationPolicy``).

Istio's checks, each problem at the field it is about:

- ``action``: ALLOW (the default), DENY, AUDIT or CUSTOM. ``provider`` is required with CUSTOM and forbidden with
  any other action (so AUDIT, as in Istio, has no provider). DENY and CUSTOM need ``rules`` (without them the
  policy would never trigger; ``- {}`` matches every request).
- ``rules[].from`` / ``rules[].to``: when present, not empty; each entry has a ``source`` / ``operation`` with at
  least one field set. ``rules[].when``: a ``key`` and at least one of ``values`` / ``notValues``.
- Values: never the empty string. String values keep Istio's matching forms: ``*`` alone (any value present), or
  one ``*`` at the start (suffix match, ``*.example.com``) or at the end (prefix match, ``/api/*``); a ``*`` anywhere
  else is rejected (Istio would silently treat it as a literal). ``ipBlocks`` / ``remoteIpBlocks`` (and their
  ``not*``) are IP addresses or CIDR ranges; ``ports`` are 1-65535, as integers or strings of digits.
- ``when`` keys are the keys the RBAC compiler compiles, read by the table it uses itself
  (``authz_conditions.parse_condition_key``): Istio's condition keys (``request.headers[<name>]``, ``source.ip``,
  ``request.auth.claims[<claim>]``, ...) except ``experimental.envoy.filters.*`` (not supported yet);
  ``source.ip`` / ``remote.ip`` / ``destination.ip`` values are IPs or CIDRs, ``destination.port`` values port
  numbers.
- With CUSTOM, the source identity fields (principals, request principals, namespaces) and the ``when`` keys
  ``source.namespace`` / ``source.principal`` / ``request.auth.*`` are not supported (as in Istio).

- ``serviceAccounts`` / ``notServiceAccounts`` (Istio 1.23+): ``<name>`` (in the policy's namespace) or
  ``<namespace>/<name>``, no wildcards, and not together with ``principals`` / ``namespaces`` (or their ``not*``),
  as Istio's validation says.
- ``provider.name``: any non-empty name. The providers are ``mixer`` (Mixer's ext_authz server) and MeshConfig's
  ``extensionProviders`` (``pilot.config.mesh_extension_providers``), and a policy is validated alone, without the
  mesh config (which also changes on its own), so, as in Istio, the name is checked when the policy is compiled: a
  CUSTOM policy naming a provider MeshConfig does not have fails closed there (what it would send to the provider
  is denied, with a warning: ``pilot.generate.authz_filters``), and ``meshplane analyze --mesh-config`` reports it
  (MP0214).

Not supported by meshplane yet (rejected with that message): ``targetRef`` / ``targetRefs`` (Gateway API gateways
and waypoints, which meshplane does not have), and Istio's path templates (``/{*}/info``, ``/api/{**}``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import cast, get_args

from pilot.config.authz_conditions import CONDITION_KEYS, ConditionKind, parse_condition_key
from pilot.config.types import (
    AuthorizationAction,
    AuthorizationCondition,
    AuthorizationOperation,
    AuthorizationPolicy,
    AuthorizationRule,
    AuthorizationSource,
    ConfigMeta,
)
from pilot.config.validate_common import Fields, describe, port_number, selector_labels
from pilot.config.validate_names import cidr_error, dns1123_label_error, dns1123_subdomain_error

__all__ = [
    "AUTHORIZATION_ACTIONS",
    "AUTHORIZATION_POLICY_FIELDS",
    "AUTHORIZATION_POLICY_UNSUPPORTED",
    "CONDITION_KEYS",
    "ip_block_error",
    "service_account_error",
    "validate_authorization_policy",
]

AUTHORIZATION_POLICY_FIELDS = ("selector", "action", "provider", "rules")
AUTHORIZATION_POLICY_UNSUPPORTED: tuple[str, ...] = ()  # targetRef(s): istio_api.UNSUPPORTED_REASONS says why
AUTHORIZATION_ACTIONS: tuple[str, ...] = get_args(AuthorizationAction)

_IP_KINDS = frozenset({ConditionKind.SOURCE_IP, ConditionKind.REMOTE_IP, ConditionKind.DESTINATION_IP})

_PROVIDER_FIELDS = ("name",)
_RULE_FIELDS = ("from", "to", "when")
_FROM_FIELDS = ("source",)
_TO_FIELDS = ("operation",)
_WHEN_FIELDS = ("key", "values", "notValues")
# YAML name -> dataclass field
_SOURCE_FIELDS = {
    "principals": "principals",
    "notPrincipals": "not_principals",
    "requestPrincipals": "request_principals",
    "notRequestPrincipals": "not_request_principals",
    "namespaces": "namespaces",
    "notNamespaces": "not_namespaces",
    "ipBlocks": "ip_blocks",
    "notIpBlocks": "not_ip_blocks",
    "remoteIpBlocks": "remote_ip_blocks",
    "notRemoteIpBlocks": "not_remote_ip_blocks",
    "serviceAccounts": "service_accounts",
    "notServiceAccounts": "not_service_accounts",
}
_SOURCE_IP_FIELDS = frozenset({"ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"})
_SERVICE_ACCOUNT_FIELDS = frozenset({"serviceAccounts", "notServiceAccounts"})
_NOT_WITH_SERVICE_ACCOUNTS = ("principals", "notPrincipals", "namespaces", "notNamespaces")
_SOURCE_NOT_WITH_CUSTOM = (
    "principals",
    "notPrincipals",
    "requestPrincipals",
    "notRequestPrincipals",
    "namespaces",
    "notNamespaces",
    "serviceAccounts",
    "notServiceAccounts",
)
_OPERATION_FIELDS = ("hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths")
_PATH_TEMPLATES = ("{*}", "{**}")
_ANY = {"from": "source", "to": "operation"}
_DIGITS = re.compile(r"[0-9]+")


def validate_authorization_policy(spec: Fields, meta: ConfigMeta) -> AuthorizationPolicy:
    """Check an AuthorizationPolicy spec (opened with ``AUTHORIZATION_POLICY_FIELDS``); problems go to
    ``spec.problems``."""
    selector = selector_labels(spec)
    action = cast(AuthorizationAction, spec.enum("action", AUTHORIZATION_ACTIONS) or "ALLOW")
    provider = _provider(spec, action)
    if action in ("DENY", "CUSTOM") and not spec.node.get("rules"):
        spec.report(
            "rules",
            f"action {action} without rules would never trigger: add an empty rule (`rules: [{{}}]`) to apply it "
            "to every request",
        )
    rules = tuple(_rule(rule, action) for rule in spec.mappings("rules", known=_RULE_FIELDS, message="Rule"))
    return AuthorizationPolicy(meta=meta, selector=selector, action=action, provider=provider, rules=rules)


def ip_block_error(value: str) -> str | None:
    """Why ``value`` is not an IP address or CIDR range (Istio's ``ValidateIPs``, checked by ``cidr_error``), or
    None; the message names both accepted forms."""
    if cidr_error(value) is None:
        return None
    kind = "CIDR range" if "/" in value else "IP address"
    return f"bad {kind} {value!r}: expected an IP address (10.1.2.3, fd00::1) or a CIDR range (10.1.0.0/16)"


def _provider(spec: Fields, action: str) -> str | None:
    provider = spec.mapping("provider", known=_PROVIDER_FIELDS, message="AuthorizationPolicy.ExtensionProvider")
    if provider is None:
        if action == "CUSTOM" and not spec.has("provider"):
            spec.report("provider", "required with action CUSTOM: name the authorizer, e.g. `provider: {name: mixer}`")
        return None
    if action != "CUSTOM":
        spec.report("provider", f"only allowed with action CUSTOM, got action {action}")
    name = provider.string("name", required=True)
    if name == "":
        provider.report("name", "must not be empty: name the provider, e.g. `mixer` or an extensionProviders entry")
    return name


def _rule(rule: Fields, action: str) -> AuthorizationRule:
    custom = action == "CUSTOM"
    for name in ("from", "to"):
        if rule.node.get(name) == []:
            rule.report(name, f"must not be empty: omit `{name}` to match any {_ANY[name]}")
    sources = tuple(
        source
        for entry in rule.mappings("from", known=_FROM_FIELDS, message="Rule.From")
        if (source := _source(entry, custom)) is not None
    )
    operations = tuple(
        operation
        for entry in rule.mappings("to", known=_TO_FIELDS, message="Rule.To")
        if (operation := _operation(entry)) is not None
    )
    when = tuple(
        condition
        for entry in rule.mappings("when", known=_WHEN_FIELDS, message="Condition")
        if (condition := _condition(entry, custom)) is not None
    )
    return AuthorizationRule(sources=sources, operations=operations, when=when)


def _source(entry: Fields, custom: bool) -> AuthorizationSource | None:
    source = entry.mapping("source", known=tuple(_SOURCE_FIELDS), required=True, message="Source")
    if source is None:
        return None
    values: dict[str, tuple[str, ...]] = {}
    for name, attribute in _SOURCE_FIELDS.items():
        read = _strings(source, name, _source_value_check(name))
        if read and custom and name in _SOURCE_NOT_WITH_CUSTOM:
            source.report(name, "not supported with action CUSTOM (as in Istio)")
        values[attribute] = read
    if not _any_set(source, _SOURCE_FIELDS):
        source.report(None, f"must set at least one of {', '.join(_SOURCE_FIELDS)}")
    if _any_set(source, _SERVICE_ACCOUNT_FIELDS) and _any_set(source, _NOT_WITH_SERVICE_ACCOUNTS):
        source.report(None, "cannot set serviceAccounts with namespaces or principals (as in Istio)")
    return AuthorizationSource(**values)


def _source_value_check(name: str) -> Callable[[str], str | None]:
    if name in _SOURCE_IP_FIELDS:
        return ip_block_error
    if name in _SERVICE_ACCOUNT_FIELDS:
        return service_account_error
    return _wildcard_error


def service_account_error(value: str) -> str | None:
    """Istio's ``CheckServiceAccount``: ``<name>`` or ``<namespace>/<name>``, Kubernetes names, no wildcards."""
    if "*" in value:
        return f"invalid service account {value!r}: wildcards are not supported in serviceAccounts"
    parts = value.split("/")
    if len(parts) > 2:
        return f"invalid service account {value!r}: expected <name> or <namespace>/<name>"
    if len(parts) == 2:
        problem = dns1123_label_error(parts[0], "namespace")
        if problem is not None:
            return f"invalid service account {value!r}: {problem}"
    return dns1123_subdomain_error(parts[-1], "service account name")


def _operation(entry: Fields) -> AuthorizationOperation | None:
    operation = entry.mapping("operation", known=_OPERATION_FIELDS, required=True, message="Operation")
    if operation is None:
        return None
    result = AuthorizationOperation(
        hosts=_strings(operation, "hosts", _wildcard_error),
        not_hosts=_strings(operation, "notHosts", _wildcard_error),
        ports=_ports(operation, "ports"),
        not_ports=_ports(operation, "notPorts"),
        methods=_strings(operation, "methods", _wildcard_error),
        not_methods=_strings(operation, "notMethods", _wildcard_error),
        paths=_strings(operation, "paths", _path_error),
        not_paths=_strings(operation, "notPaths", _path_error),
    )
    if not _any_set(operation, _OPERATION_FIELDS):
        operation.report(None, f"must set at least one of {', '.join(_OPERATION_FIELDS)}")
    return result


def _condition(entry: Fields, custom: bool) -> AuthorizationCondition | None:
    key = entry.string("key", required=True)
    parsed = parse_condition_key(key) if key is not None else None
    if isinstance(parsed, str):
        entry.report("key", parsed)
        parsed = None
    if parsed is not None and custom and _not_with_custom(parsed.kind):
        entry.report("key", f"{key} is not supported with action CUSTOM (as in Istio)")
    check = _condition_value_check(parsed.kind) if parsed is not None else None
    port_key = parsed is not None and parsed.kind is ConditionKind.DESTINATION_PORT
    values = _strings(entry, "values", check, ports_as_text=port_key)
    not_values = _strings(entry, "notValues", check, ports_as_text=port_key)
    if not _any_set(entry, ("values", "notValues")):
        entry.report(None, "at least one of values or notValues must be set")
    if key is None:
        return None
    return AuthorizationCondition(key=key, values=values, not_values=not_values)


def _not_with_custom(kind: ConditionKind) -> bool:
    return kind in (ConditionKind.SOURCE_NAMESPACE, ConditionKind.SOURCE_PRINCIPAL) or kind.value.startswith(
        "request.auth."
    )


def _condition_value_check(kind: ConditionKind) -> Callable[[str], str | None]:
    if kind in _IP_KINDS:
        return ip_block_error
    if kind is ConditionKind.DESTINATION_PORT:
        return _port_value_error
    return _wildcard_error


def _port_value_error(value: str) -> str | None:
    if _DIGITS.fullmatch(value) and int(value) <= 65535:
        return None
    return f"bad port {value!r}: expected a port number between 0 and 65535"


def _wildcard_error(value: str) -> str | None:
    """Istio matches ``*`` alone (presence), ``*suffix`` and ``prefix*``; anything else with a ``*`` is rejected."""
    if value == "*" or "*" not in value:
        return None
    if value.count("*") == 1 and (value.startswith("*") or value.endswith("*")):
        return None
    return (
        f"invalid value {value!r}: '*' is only allowed as the whole value or at the start or the end "
        "(e.g. '*.example.com', '/api/*', '*/info')"
    )


def _path_error(value: str) -> str | None:
    if any(template in value for template in _PATH_TEMPLATES):
        return f"path template {value!r} ({{*}}, {{**}}) is not supported by meshplane yet"
    return _wildcard_error(value)


def _strings(
    fields: Fields, name: str, check: Callable[[str], str | None] | None, *, ports_as_text: bool = False
) -> tuple[str, ...]:
    """A list of non-empty strings, each passing ``check``; ``ports_as_text`` also takes integers (port numbers)."""
    raw = fields.node.get(name)
    if ports_as_text and isinstance(raw, list):  # read YAML integers as their digits, then as any list of strings
        texts = [str(item) if isinstance(item, int) and not isinstance(item, bool) else item for item in raw]
        fields = Fields({name: texts}, fields.path, fields.problems)
    values = fields.strings(name) or ()
    for index, value in enumerate(values):
        path = fields.at(name, index)
        if not value:
            fields.problems.add(path, "empty value not allowed")
        elif check is not None:
            fields.problems.add_if(path, check(value))
    return values


def _ports(fields: Fields, name: str) -> tuple[int, ...]:
    """Ports as integers or strings of digits (Istio's are strings), 1-65535."""
    raw = fields.node.get(name)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        fields.report(name, f"expected a list of port numbers, got {describe(raw)}")
        return ()
    ports: list[int] = []
    for index, item in enumerate(raw):
        number = port_number(item)
        if number is None:
            fields.problems.add(
                fields.at(name, index), f"port must be a number between 1 and 65535, got {describe(item)}"
            )
        else:
            ports.append(number)
    return tuple(ports)


def _any_set(fields: Fields, names: Iterable[str]) -> bool:
    """Whether any of ``names`` has a value other than null or an empty list (Istio counts values: ``len() > 0``)."""
    return any(fields.node.get(name) not in (None, []) for name in names)
