"""AuthorizationPolicy: security.istio.io API versions, Istio's ValidateAuthorizationPolicy checks (actions, provider,
rules, sources, operations, conditions, value forms), every problem reported with its line and field path, and the
exact dataclasses of accepted policies."""

from __future__ import annotations

import textwrap

import pytest

from pilot.config.parse import parse_config_text
from pilot.config.types import (
    AuthorizationCondition,
    AuthorizationOperation,
    AuthorizationPolicy,
    AuthorizationRule,
    AuthorizationSource,
    frozen_labels,
)
from tests.conftest import ApiGroupDocs, assert_rejected_with

KIND = "AuthorizationPolicy"


def accepted(docs: ApiGroupDocs, body: str) -> AuthorizationPolicy:
    resource = docs.accepted(KIND, body)
    assert isinstance(resource, AuthorizationPolicy)
    return resource


@pytest.mark.parametrize("api_version", ["security.istio.io/v1", "security.istio.io/v1beta1"])
def test_security_api_versions_are_accepted(api_version: str) -> None:
    text = f"apiVersion: {api_version}\nkind: AuthorizationPolicy\nmetadata: {{name: allow-nothing}}\nspec: {{}}\n"
    parsed = parse_config_text(text, "ap.yaml")
    (resource,) = parsed.resources
    assert isinstance(resource, AuthorizationPolicy)
    assert str(resource.meta.key) == "AuthorizationPolicy/default/allow-nothing"
    assert resource.meta.content_hash
    assert not parsed.warnings


@pytest.mark.parametrize("api_version", ["networking.istio.io/v1", "mixer.meshplane.io/v1", "security.istio.io/v2"])
def test_other_api_versions_are_rejected(api_version: str) -> None:
    text = f"apiVersion: {api_version}\nkind: AuthorizationPolicy\nmetadata: {{name: d}}\nspec: {{}}\n"
    (rejected,) = parse_config_text(text, "ap.yaml").rejected
    (error,) = rejected.errors
    assert str(error).startswith(
        f"ap.yaml:1: AuthorizationPolicy default/d: apiVersion: invalid value {api_version!r}: expected one of "
        "security.istio.io/v1, security.istio.io/v1beta1"
    )


def test_empty_policy_is_an_allow_policy_without_rules(security_docs: ApiGroupDocs) -> None:
    policy = accepted(security_docs, "{}")
    assert policy == AuthorizationPolicy(meta=policy.meta)
    assert policy.action == "ALLOW"
    assert policy.selector is None
    assert policy.rules == ()


def test_every_field_lands_in_the_dataclass(security_docs: ApiGroupDocs) -> None:
    body = """\
        selector:
          matchLabels: {app: reviews, version: v1}
        action: ALLOW
        rules:
        - from:
          - source:
              principals: [cluster.local/ns/default/sa/productpage, "*"]
              notPrincipals: [cluster.local/ns/default/sa/bad]
              requestPrincipals: ["issuer.example.com/*"]
              notRequestPrincipals: ["*@evil.example.com"]
              namespaces: [default]
              notNamespaces: [kube-system]
              ipBlocks: [10.1.0.0/16, 127.0.0.12]
              notIpBlocks: ["fd00::/8"]
              remoteIpBlocks: [192.168.0.1]
              notRemoteIpBlocks: [192.168.0.0/24]
          - source: {namespaces: [istio-system]}
          to:
          - operation:
              hosts: ["*.example.com", reviews]
              notHosts: [admin.example.com]
              ports: [9080, "8080"]
              notPorts: ["15000"]
              methods: [GET, HEAD]
              notMethods: [DELETE]
              paths: ["/api/*", "*/info", /exact]
              notPaths: [/api/admin]
          when:
          - key: request.headers[x-user]
            values: [alice, "bob*"]
          - key: source.ip
            notValues: [10.0.0.1, 10.2.0.0/16]
          - key: destination.port
            values: [9080, "8080"]
          - key: request.auth.claims[groups]
            values: [admins]
        - {}
    """
    policy = accepted(security_docs, body)
    assert policy == AuthorizationPolicy(
        meta=policy.meta,
        selector=frozen_labels({"app": "reviews", "version": "v1"}),
        action="ALLOW",
        provider=None,
        rules=(
            AuthorizationRule(
                sources=(
                    AuthorizationSource(
                        principals=("cluster.local/ns/default/sa/productpage", "*"),
                        not_principals=("cluster.local/ns/default/sa/bad",),
                        request_principals=("issuer.example.com/*",),
                        not_request_principals=("*@evil.example.com",),
                        namespaces=("default",),
                        not_namespaces=("kube-system",),
                        ip_blocks=("10.1.0.0/16", "127.0.0.12"),
                        not_ip_blocks=("fd00::/8",),
                        remote_ip_blocks=("192.168.0.1",),
                        not_remote_ip_blocks=("192.168.0.0/24",),
                    ),
                    AuthorizationSource(namespaces=("istio-system",)),
                ),
                operations=(
                    AuthorizationOperation(
                        hosts=("*.example.com", "reviews"),
                        not_hosts=("admin.example.com",),
                        ports=(9080, 8080),
                        not_ports=(15000,),
                        methods=("GET", "HEAD"),
                        not_methods=("DELETE",),
                        paths=("/api/*", "*/info", "/exact"),
                        not_paths=("/api/admin",),
                    ),
                ),
                when=(
                    AuthorizationCondition(key="request.headers[x-user]", values=("alice", "bob*")),
                    AuthorizationCondition(key="source.ip", not_values=("10.0.0.1", "10.2.0.0/16")),
                    AuthorizationCondition(key="destination.port", values=("9080", "8080")),
                    AuthorizationCondition(key="request.auth.claims[groups]", values=("admins",)),
                ),
            ),
            AuthorizationRule(),
        ),
    )


ACCEPTED = [
    ("deny-every-request", "action: DENY\nrules: [{}]", None, "DENY", None, (AuthorizationRule(),)),
    (
        "custom-mixer",
        "action: CUSTOM\nprovider: {name: mixer}\nrules:\n- to: [{operation: {paths: [/api/*]}}]",
        None,
        "CUSTOM",
        "mixer",
        (AuthorizationRule(operations=(AuthorizationOperation(paths=("/api/*",)),)),),
    ),
    (
        "custom-with-ip-and-header-conditions",
        "action: CUSTOM\nprovider: {name: mixer}\nrules:\n"
        "- from: [{source: {ipBlocks: [10.0.0.0/8]}}]\n  when: [{key: 'request.headers[x-id]', values: ['*']}]",
        None,
        "CUSTOM",
        "mixer",
        (
            AuthorizationRule(
                sources=(AuthorizationSource(ip_blocks=("10.0.0.0/8",)),),
                when=(AuthorizationCondition(key="request.headers[x-id]", values=("*",)),),
            ),
        ),
    ),
    (
        "audit",
        "action: AUDIT\nrules: [{to: [{operation: {methods: [POST]}}]}]",
        None,
        "AUDIT",
        None,
        (AuthorizationRule(operations=(AuthorizationOperation(methods=("POST",)),)),),
    ),
    ("audit-without-rules", "action: AUDIT", None, "AUDIT", None, ()),
    ("allow-nothing-with-empty-rules", "rules: []", None, "ALLOW", None, ()),
    ("empty-selector-is-namespace-wide", "selector: {matchLabels: {}}", None, "ALLOW", None, ()),
    ("selector-without-labels", "selector: {}", None, "ALLOW", None, ()),
    ("selector", "selector: {matchLabels: {app: db}}", {"app": "db"}, "ALLOW", None, ()),
    (
        "ipv6-and-host-bits-in-cidr",
        "rules: [{from: [{source: {ipBlocks: ['::1', '10.1.2.3/16']}}]}]",
        None,
        "ALLOW",
        None,
        (AuthorizationRule(sources=(AuthorizationSource(ip_blocks=("::1", "10.1.2.3/16")),)),),
    ),
    (
        "custom-provider-from-mesh-config",  # which providers exist is known when the policy is compiled
        "action: CUSTOM\nprovider: {name: ext-authz-http}\nrules: [{}]",
        None,
        "CUSTOM",
        "ext-authz-http",
        (AuthorizationRule(),),
    ),
    (
        "service-accounts",
        "rules: [{from: [{source: {serviceAccounts: [sleep, other/curl], notServiceAccounts: [x]}}]}]",
        None,
        "ALLOW",
        None,
        (
            AuthorizationRule(
                sources=(AuthorizationSource(service_accounts=("sleep", "other/curl"), not_service_accounts=("x",)),)
            ),
        ),
    ),
    (
        "when-not-values-only",
        "rules: [{when: [{key: connection.sni, notValues: ['*.internal']}]}]",
        None,
        "ALLOW",
        None,
        (AuthorizationRule(when=(AuthorizationCondition(key="connection.sni", not_values=("*.internal",)),)),),
    ),
]


@pytest.mark.parametrize(
    ("body", "selector", "action", "provider", "rules"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED]
)
def test_accepted(
    security_docs: ApiGroupDocs,
    body: str,
    selector: dict[str, str] | None,
    action: str,
    provider: str | None,
    rules: tuple[AuthorizationRule, ...],
) -> None:
    policy = accepted(security_docs, body)
    assert policy == AuthorizationPolicy(
        meta=policy.meta,
        selector=frozen_labels(selector) if selector is not None else None,
        action=action,  # type: ignore[arg-type]  # the table holds plain strings
        provider=provider,
        rules=rules,
    )


_KEYS = "expected one of request.headers[<name>], source.ip, remote.ip, source.namespace"
_STAR = "'*' is only allowed as the whole value or at the start or the end"

REJECTIONS = [
    ("action-unknown", "action: REJECT", [(1, "spec.action", "invalid value 'REJECT': expected one of ALLOW, DENY")]),
    (
        "action-lower-case",
        "action: allow",
        [(1, "spec.action", "invalid value 'allow': expected one of ALLOW, DENY, AUDIT, CUSTOM")],
    ),
    (
        "provider-with-allow",
        "provider: {name: mixer}",
        [(1, "spec.provider", "only allowed with action CUSTOM, got action ALLOW")],
    ),
    (
        "provider-with-audit",
        "action: AUDIT\nprovider: {name: mixer}",
        [(2, "spec.provider", "only allowed with action CUSTOM, got action AUDIT")],
    ),
    (
        "custom-without-provider",
        "action: CUSTOM\nrules: [{}]",
        [(0, "spec.provider", "required with action CUSTOM: name the authorizer, e.g. `provider: {name: mixer}`")],
    ),
    (
        "custom-provider-empty-name",
        "action: CUSTOM\nprovider:\n  name: ''\nrules: [{}]",
        [(3, "spec.provider.name", "must not be empty")],
    ),
    (
        "custom-provider-without-name",
        "action: CUSTOM\nprovider: {}\nrules: [{}]",
        [(2, "spec.provider.name", "required field is missing")],
    ),
    (
        "provider-unknown-field",
        "action: CUSTOM\nprovider: {name: mixer, nam: x}\nrules: [{}]",
        [(2, "spec.provider.nam", "unknown field 'nam' (did you mean 'name'?)")],
    ),
    (
        "custom-without-rules",
        "action: CUSTOM\nprovider: {name: mixer}",
        [(0, "spec.rules", "action CUSTOM without rules would never trigger: add an empty rule (`rules: [{}]`)")],
    ),
    (
        "deny-without-rules",
        "action: DENY",
        [(0, "spec.rules", "action DENY without rules would never trigger")],
    ),
    ("deny-empty-rules", "action: DENY\nrules: []", [(2, "spec.rules", "action DENY without rules")]),
    ("rule-null", "rules:\n- null", [(2, "spec.rules[0]", "expected a mapping, got null")]),
    ("rule-unknown-field", "rules:\n- form: []", [(2, "spec.rules[0].form", "did you mean 'from'?")]),
    (
        "from-empty",
        "rules:\n- from: []",
        [(2, "spec.rules[0].from", "must not be empty: omit `from` to match any source")],
    ),
    ("to-empty", "rules:\n- to: []", [(2, "spec.rules[0].to", "must not be empty: omit `to` to match any operation")]),
    ("from-without-source", "rules:\n- from:\n  - {}", [(3, "spec.rules[0].from[0].source", "required field")]),
    (
        "source-empty",
        "rules:\n- from:\n  - source: {}",
        [(3, "spec.rules[0].from[0].source", "must set at least one of principals, notPrincipals, requestPrincipals")],
    ),
    (
        "source-empty-lists",
        "rules:\n- from:\n  - source: {principals: []}",
        [(3, "spec.rules[0].from[0].source", "must set at least one of")],
    ),
    ("to-without-operation", "rules:\n- to:\n  - {}", [(3, "spec.rules[0].to[0].operation", "required field")]),
    (
        "operation-empty",
        "rules:\n- to:\n  - operation: {}",
        [(3, "spec.rules[0].to[0].operation", "must set at least one of hosts, notHosts, ports, notPorts, methods")],
    ),
    (
        "source-unknown-field",
        "rules:\n- from:\n  - source: {principal: [a]}",
        [
            (3, "spec.rules[0].from[0].source.principal", "unknown field 'principal' (did you mean 'principals'?)"),
            (3, "spec.rules[0].from[0].source", "must set at least one of principals"),
        ],
    ),
    (
        "service-account-wildcard",
        "rules:\n- from:\n  - source: {serviceAccounts: ['default/*']}",
        [(3, "spec.rules[0].from[0].source.serviceAccounts[0]", "wildcards are not supported in serviceAccounts")],
    ),
    (
        "service-account-three-parts",
        "rules:\n- from:\n  - source: {notServiceAccounts: [a/b/c]}",
        [(3, "spec.rules[0].from[0].source.notServiceAccounts[0]", "expected <name> or <namespace>/<name>")],
    ),
    (
        "service-account-bad-namespace",
        "rules:\n- from:\n  - source: {serviceAccounts: [Default/sa]}",
        [(3, "spec.rules[0].from[0].source.serviceAccounts[0]", "invalid service account 'Default/sa'")],
    ),
    (
        "service-accounts-with-principals",
        "rules:\n- from:\n  - source: {serviceAccounts: [sa], principals: [a]}",
        [(3, "spec.rules[0].from[0].source", "cannot set serviceAccounts with namespaces or principals")],
    ),
    (
        "service-accounts-with-custom",
        "action: CUSTOM\nprovider: {name: mixer}\nrules:\n- from:\n  - source: {serviceAccounts: [sa]}",
        [(5, "spec.rules[0].from[0].source.serviceAccounts", "not supported with action CUSTOM")],
    ),
    (
        "empty-principal",
        "rules:\n- from:\n  - source:\n      principals: [a, '']",
        [(4, "spec.rules[0].from[0].source.principals[1]", "empty value not allowed")],
    ),
    (
        "principal-not-a-string",
        "rules:\n- from:\n  - source:\n      principals: [a, 7]",
        [(4, "spec.rules[0].from[0].source.principals[1]", "expected a string, got integer 7")],
    ),
    (
        "namespaces-not-a-list",
        "rules:\n- from:\n  - source:\n      namespaces: default",
        [(4, "spec.rules[0].from[0].source.namespaces", "expected a list of strings, got string 'default'")],
    ),
    (
        "star-in-the-middle-of-a-host",
        "rules:\n- to:\n  - operation:\n      hosts: ['api.*.example.com']",
        [(4, "spec.rules[0].to[0].operation.hosts[0]", f"invalid value 'api.*.example.com': {_STAR}")],
    ),
    (
        "star-at-both-ends",
        "rules:\n- from:\n  - source:\n      notNamespaces: ['*test*']",
        [(4, "spec.rules[0].from[0].source.notNamespaces[0]", "invalid value '*test*'")],
    ),
    (
        "star-in-the-middle-of-a-path",
        "rules:\n- to:\n  - operation:\n      notPaths: [/api/*/info]",
        [(4, "spec.rules[0].to[0].operation.notPaths[0]", "invalid value '/api/*/info'")],
    ),
    (
        "path-template-one",
        "rules:\n- to:\n  - operation:\n      paths: ['/{*}/info']",
        [(4, "spec.rules[0].to[0].operation.paths[0]", "path template '/{*}/info' ({*}, {**}) is not supported")],
    ),
    (
        "path-template-any",
        "rules:\n- to:\n  - operation:\n      notPaths: ['/api/{**}']",
        [(4, "spec.rules[0].to[0].operation.notPaths[0]", "not supported by meshplane yet")],
    ),
    (
        "bad-ip",
        "rules:\n- from:\n  - source:\n      ipBlocks: [10.0.0.256]",
        [(4, "spec.rules[0].from[0].source.ipBlocks[0]", "bad IP address '10.0.0.256': expected an IP address")],
    ),
    (
        "bad-cidr",
        "rules:\n- from:\n  - source:\n      notRemoteIpBlocks: [10.0.0.0/33]",
        [(4, "spec.rules[0].from[0].source.notRemoteIpBlocks[0]", "bad CIDR range '10.0.0.0/33'")],
    ),
    (
        "star-is-not-an-ip",
        "rules:\n- from:\n  - source:\n      remoteIpBlocks: ['*']",
        [(4, "spec.rules[0].from[0].source.remoteIpBlocks[0]", "bad IP address '*'")],
    ),
    (
        "port-zero",
        "rules:\n- to:\n  - operation:\n      ports: [0]",
        [(4, "spec.rules[0].to[0].operation.ports[0]", "port must be a number between 1 and 65535, got integer 0")],
    ),
    (
        "port-too-large",
        "rules:\n- to:\n  - operation:\n      notPorts: ['65536']",
        [(4, "spec.rules[0].to[0].operation.notPorts[0]", "got string '65536'")],
    ),
    (
        "port-name",
        "rules:\n- to:\n  - operation:\n      ports: [80, http]",
        [(4, "spec.rules[0].to[0].operation.ports[1]", "got string 'http'")],
    ),
    (
        "port-boolean",
        "rules:\n- to:\n  - operation:\n      ports: [true]",
        [(4, "spec.rules[0].to[0].operation.ports[0]", "got boolean true")],
    ),
    (
        "ports-not-a-list",
        "rules:\n- to:\n  - operation:\n      ports: 80",
        [(4, "spec.rules[0].to[0].operation.ports", "expected a list of port numbers, got integer 80")],
    ),
    (
        "when-without-key",
        "rules:\n- when:\n  - values: [a]",
        [(3, "spec.rules[0].when[0].key", "required field is missing")],
    ),
    (
        "when-without-values",
        "rules:\n- when:\n  - key: source.ip",
        [(3, "spec.rules[0].when[0]", "at least one of values or notValues must be set")],
    ),
    (
        "when-empty-values",
        "rules:\n- when:\n  - key: source.ip\n    values: []",
        [(3, "spec.rules[0].when[0]", "at least one of values or notValues must be set")],
    ),
    (
        "when-unknown-key",
        "rules:\n- when:\n  - key: source.user\n    values: [a]",
        [(3, "spec.rules[0].when[0].key", f"unknown attribute 'source.user': {_KEYS}")],
    ),
    (
        "when-header-without-name",
        "rules:\n- when:\n  - key: 'request.headers[]'\n    values: [a]",
        [(3, "spec.rules[0].when[0].key", "bad key 'request.headers[]': expected the form name[key]")],
    ),
    (
        "when-claim-without-brackets",
        "rules:\n- when:\n  - key: request.auth.claims.iss\n    values: [a]",
        [(3, "spec.rules[0].when[0].key", "bad key 'request.auth.claims.iss'")],
    ),
    (
        "when-headers-without-name",
        "rules:\n- when:\n  - key: request.headers\n    values: [a]",
        [(3, "spec.rules[0].when[0].key", "bad key 'request.headers': expected the form name[key]")],
    ),
    (
        "when-destination-namespace",
        "rules:\n- when:\n  - key: destination.namespace\n    values: [a]",
        [(3, "spec.rules[0].when[0].key", "attribute destination.namespace is replaced by the policy's metadata")],
    ),
    (
        "when-destination-labels",
        "rules:\n- when:\n  - key: 'destination.labels[app]'\n    values: [a]",
        [(3, "spec.rules[0].when[0].key", "is replaced by the workload selector")],
    ),
    (
        "when-values-not-a-list",
        "rules:\n- when:\n  - key: source.namespace\n    values: default",
        [(4, "spec.rules[0].when[0].values", "expected a list of strings, got string 'default'")],
    ),
    (
        "when-source-ip-not-an-ip",
        "rules:\n- when:\n  - key: source.ip\n    values: [10.0.0.1, localhost]",
        [(4, "spec.rules[0].when[0].values[1]", "bad IP address 'localhost'")],
    ),
    (
        "when-destination-ip-bad-cidr",
        "rules:\n- when:\n  - key: destination.ip\n    notValues: [10.0.0.0/40]",
        [(4, "spec.rules[0].when[0].notValues[0]", "bad CIDR range '10.0.0.0/40'")],
    ),
    (
        "when-destination-port-not-a-number",
        "rules:\n- when:\n  - key: destination.port\n    values: [http]",
        [(4, "spec.rules[0].when[0].values[0]", "bad port 'http': expected a port number between 0 and 65535")],
    ),
    (
        "when-value-empty",
        "rules:\n- when:\n  - key: source.namespace\n    values: ['']",
        [(4, "spec.rules[0].when[0].values[0]", "empty value not allowed")],
    ),
    (
        "when-value-star-in-the-middle",
        "rules:\n- when:\n  - key: 'request.headers[x-user]'\n    values: ['a*b']",
        [(4, "spec.rules[0].when[0].values[0]", f"invalid value 'a*b': {_STAR}")],
    ),
    (
        "custom-with-principals",
        "action: CUSTOM\nprovider: {name: mixer}\nrules:\n- from:\n  - source:\n      notPrincipals: [a]",
        [(6, "spec.rules[0].from[0].source.notPrincipals", "not supported with action CUSTOM (as in Istio)")],
    ),
    (
        "custom-with-namespaces",
        "action: CUSTOM\nprovider: {name: mixer}\nrules:\n- from:\n  - source:\n      namespaces: [a]",
        [(6, "spec.rules[0].from[0].source.namespaces", "not supported with action CUSTOM")],
    ),
    (
        "custom-with-source-principal-condition",
        "action: CUSTOM\nprovider: {name: mixer}\nrules:\n- when:\n  - key: source.principal\n    values: [a]",
        [(5, "spec.rules[0].when[0].key", "source.principal is not supported with action CUSTOM")],
    ),
    (
        "custom-with-jwt-claim-condition",
        "action: CUSTOM\nprovider: {name: mixer}\nrules:\n- when:\n  - key: 'request.auth.claims[iss]'\n"
        "    values: [a]",
        [(5, "spec.rules[0].when[0].key", "request.auth.claims[iss] is not supported with action CUSTOM")],
    ),
    (
        "target-ref",
        "targetRef: {kind: Gateway, name: gw}",
        [(1, "spec.targetRef", "not supported by meshplane yet: it attaches a policy to Gateway API gateways")],
    ),
    ("target-refs", "targetRefs: []", [(1, "spec.targetRefs", "not supported by meshplane yet")]),
    ("spec-unknown-field", "rule: []", [(1, "spec.rule", "did you mean 'rules'?")]),
    (
        "selector-wildcard",
        "selector:\n  matchLabels: {app: '*'}",
        [(2, "spec.selector.matchLabels.app", "invalid label value '*'")],
    ),
    ("selector-unknown-field", "selector: {labels: {a: b}}", [(1, "spec.selector.labels", "unknown field")]),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in REJECTIONS], ids=[c[0] for c in REJECTIONS])
def test_rejected(security_docs: ApiGroupDocs, body: str, expected: list[tuple[int, str, str]]) -> None:
    assert_rejected_with(security_docs, KIND, body, expected)


def test_an_error_names_file_line_kind_and_resource(security_docs: ApiGroupDocs) -> None:
    (error,) = security_docs.errors(KIND, "action: DENY\nrules:\n- to:\n  - operation: {ports: [0]}")
    assert error == (
        "test.yaml:10: AuthorizationPolicy ns/r: spec.rules[0].to[0].operation.ports[0]: "
        "port must be a number between 1 and 65535, got integer 0"
    )


def test_every_problem_is_reported_at_once(security_docs: ApiGroupDocs) -> None:
    body = textwrap.dedent(
        """\
        action: CUSTOM
        provider: {name: ext}
        rules:
        - from:
          - source: {ipBlocks: [nope], requestPrincipals: [a]}
          to:
          - operation: {paths: ['/a/*/b']}
          when:
          - key: nope
            values: [x]
        """
    )
    assert_rejected_with(
        security_docs,
        KIND,
        body,
        [
            (5, "spec.rules[0].from[0].source.ipBlocks[0]", "bad IP address 'nope'"),
            (5, "spec.rules[0].from[0].source.requestPrincipals", "not supported with action CUSTOM"),
            (7, "spec.rules[0].to[0].operation.paths[0]", "invalid value '/a/*/b'"),
            (9, "spec.rules[0].when[0].key", "unknown attribute 'nope'"),
        ],
    )


def test_rejections_of_one_document_do_not_affect_another() -> None:
    text = (
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: bad}\nspec: {action: DENY}\n"
        "---\n"
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: good}\n"
        "spec: {action: DENY, rules: [{}]}\n"
    )
    parsed = parse_config_text(text, "ap.yaml")
    assert [r.meta.key.name for r in parsed.resources] == ["good"]
    assert [r.key.name if r.key else None for r in parsed.rejected] == ["bad"]


def test_content_hash_follows_the_spec(security_docs: ApiGroupDocs) -> None:
    deny = accepted(security_docs, "action: DENY\nrules: [{}]")
    also_deny = accepted(security_docs, "action: DENY\nrules:\n- {}")
    audit = accepted(security_docs, "action: AUDIT\nrules: [{}]")
    assert deny.meta.content_hash == also_deny.meta.content_hash != audit.meta.content_hash
