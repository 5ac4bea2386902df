"""AuthorizationPolicy -> Envoy RBAC, field by field against Istio's builder output (``authz/builder/testdata``):
matchers per field and ``*`` form, not* wrapping, Istio's AND order, ``when`` keys, policy names, empty rules, and
the TCP rules for HTTP-only fields per action."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import structlog
from envoy.config.rbac.v3.rbac_pb2 import RBAC, Permission, Policy, Principal, SourcedMetadata
from envoy.config.route.v3.route_components_pb2 import HeaderMatcher
from envoy.type.matcher.v3.metadata_pb2 import MetadataMatcher
from envoy.type.matcher.v3.path_pb2 import PathMatcher
from envoy.type.matcher.v3.regex_pb2 import RegexMatcher
from envoy.type.matcher.v3.string_pb2 import StringMatcher
from envoy.type.matcher.v3.value_pb2 import ListMatcher, OrMatcher, ValueMatcher

from pilot.config.authz_conditions import ConditionKind
from pilot.config.parse import parse_config_text
from pilot.config.types import (
    AuthorizationCondition,
    AuthorizationOperation,
    AuthorizationPolicy,
    AuthorizationRule,
    AuthorizationSource,
    ConfigMeta,
)
from pilot.generate import rbac as rbac_module
from pilot.generate.rbac import RbacAction, build_policy, build_rbac, compiled_condition_kinds, policy_name

MakeMeta = Callable[..., ConfigMeta]
ISTIO_ISSUER = "testing@secure.istio.io"  # the issuer and subject of the tokens in Istio's JWT tasks


def exact(value: str, ignore_case: bool = False) -> StringMatcher:
    return StringMatcher(exact=value, ignore_case=ignore_case)


def regex(value: str) -> StringMatcher:
    return StringMatcher(safe_regex=RegexMatcher(regex=value))


def authenticated(matcher: StringMatcher) -> Principal:
    return Principal(authenticated=Principal.Authenticated(principal_name=matcher))


def any_of_ids(*ids: Principal) -> Principal:
    return Principal(or_ids=Principal.Set(ids=list(ids)))


def any_of_rules(*rules: Permission) -> Permission:
    return Permission(or_rules=Permission.Set(rules=list(rules)))


def and_ids(*ids: Principal) -> Principal:
    return Principal(and_ids=Principal.Set(ids=list(ids)))


def and_rules(*rules: Permission) -> Permission:
    return Permission(and_rules=Permission.Set(rules=list(rules)))


def cidr(address: str, length: int) -> Any:
    return {"address_prefix": address, "prefix_len": {"value": length}}


def payload(*claims: str, value: ValueMatcher) -> Principal:
    """A match on the verified JWT payload that jwt_authn put in its dynamic metadata (``payload``)."""
    path = [MetadataMatcher.PathSegment(key=k) for k in ("payload", *claims)]
    matcher = MetadataMatcher(filter="envoy.filters.http.jwt_authn", path=path, value=value)
    return Principal(sourced_metadata=SourcedMetadata(metadata_matcher=matcher))


def claim(*claims: str, value: StringMatcher) -> Principal:
    """Istio's extended JWT claim match: the claim is the string, or a list holding it."""
    string = ValueMatcher(string_match=value)
    either = OrMatcher(value_matchers=[ValueMatcher(list_match=ListMatcher(one_of=string)), string])
    return payload(*claims, value=ValueMatcher(or_match=either))


def token(iss: StringMatcher, sub: StringMatcher) -> Principal:
    """Istio's requestPrincipals match: the payload's iss AND its sub."""
    return and_ids(
        payload("iss", value=ValueMatcher(string_match=iss)), payload("sub", value=ValueMatcher(string_match=sub))
    )


ANY_PERMISSION = and_rules(Permission(any=True))
ANY_PRINCIPAL = and_ids(Principal(any=True))


def from_source(**fields: Any) -> Policy:
    return build_policy(AuthorizationRule(sources=(AuthorizationSource(**fields),)), action="ALLOW")


def to_operation(**fields: Any) -> Policy:
    return build_policy(AuthorizationRule(operations=(AuthorizationOperation(**fields),)), action="ALLOW")


def only_principal(policy: Policy) -> Principal:
    [principal] = policy.principals
    assert list(policy.permissions) == [ANY_PERMISSION]
    return principal


def only_permission(policy: Policy) -> Permission:
    [permission] = policy.permissions
    assert list(policy.principals) == [ANY_PRINCIPAL]
    return permission


# ------------------------------------------------------------------------------------------------ from.source


def test_principals_match_the_spiffe_id_with_istio_wildcards() -> None:
    principal = only_principal(
        from_source(principals=("cluster.local/ns/default/sa/a", "cluster.local/ns/x/*", "*/sa/b", "*"))
    )
    assert principal == and_ids(
        any_of_ids(
            authenticated(exact("spiffe://cluster.local/ns/default/sa/a")),
            authenticated(StringMatcher(prefix="spiffe://cluster.local/ns/x/")),
            authenticated(regex("spiffe://.*/sa/b")),
            authenticated(regex(".+")),  # "*": any authenticated peer, no spiffe:// prefix (Istio)
        )
    )


def test_not_principals_wrap_their_or_in_not_id() -> None:
    principal = only_principal(from_source(principals=("a/*",), not_principals=("a/ns/x/sa/b",)))
    assert principal == and_ids(
        any_of_ids(authenticated(StringMatcher(prefix="spiffe://a/"))),
        Principal(not_id=any_of_ids(authenticated(exact("spiffe://a/ns/x/sa/b")))),
    )


def test_namespaces_match_the_principal_name_by_regex() -> None:
    principal = only_principal(from_source(namespaces=("default", "team-*", "*-prod", "*"), not_namespaces=("kube",)))
    assert principal == and_ids(
        any_of_ids(
            authenticated(regex(".*/ns/default/.*")),
            authenticated(regex(".*/ns/team-.*/.*")),
            authenticated(regex(".*/ns/.*-prod/.*")),
            authenticated(regex(".*/ns/.*/.*")),
        ),
        Principal(not_id=any_of_ids(authenticated(regex(".*/ns/kube/.*")))),
    )


def test_ip_blocks_are_direct_remote_ip_and_remote_ip_blocks_remote_ip() -> None:
    principal = only_principal(
        from_source(
            ip_blocks=("127.0.0.21", "10.0.0.0/8"),
            not_ip_blocks=("::1",),
            remote_ip_blocks=("192.168.1.0/24",),
            not_remote_ip_blocks=("192.168.1.7",),
        )
    )
    assert principal == and_ids(
        any_of_ids(Principal(remote_ip=cidr("192.168.1.0", 24))),
        Principal(not_id=any_of_ids(Principal(remote_ip=cidr("192.168.1.7", 32)))),
        any_of_ids(Principal(direct_remote_ip=cidr("127.0.0.21", 32)), Principal(direct_remote_ip=cidr("10.0.0.0", 8))),
        Principal(not_id=any_of_ids(Principal(direct_remote_ip=cidr("::1", 128)))),
    )


def test_request_principals_match_the_jwt_payload_iss_and_sub() -> None:
    principal = only_principal(from_source(request_principals=("issuer/sub", "*"), not_request_principals=("x*",)))
    assert principal == and_ids(
        any_of_ids(token(exact("issuer"), exact("sub")), token(regex(".+"), regex(".+"))),
        Principal(not_id=any_of_ids(token(StringMatcher(prefix="x"), regex(".+")))),
    )


@pytest.mark.parametrize(
    ("value", "iss", "sub"),
    [
        ("https://accounts.example.com/a/b", exact("https://accounts.example.com/a"), exact("b")),  # last "/"
        (f"{ISTIO_ISSUER}/{ISTIO_ISSUER}", exact(ISTIO_ISSUER), exact(ISTIO_ISSUER)),
        ("*", regex(".+"), regex(".+")),
        ("*/sub", regex(".+"), exact("sub")),
        ("*.example.com/sub", StringMatcher(suffix=".example.com"), exact("sub")),
        ("*sub", regex(".+"), StringMatcher(suffix="sub")),
        ("iss/*", exact("iss"), regex(".+")),
        ("iss/su*", exact("iss"), StringMatcher(prefix="su")),
        ("iss*", StringMatcher(prefix="iss"), regex(".+")),
        ("iss", exact("iss"), exact("")),
    ],
    ids=["url-issuer", "istio-task", "any", "any-issuer", "issuer-suffix", "no-slash-suffix", "any-subject",
         "subject-prefix", "no-slash-prefix", "no-slash"],
)  # fmt: skip
def test_request_principal_forms_as_istio_splits_them(value: str, iss: StringMatcher, sub: StringMatcher) -> None:
    assert rbac_module.request_principal(value) == token(iss, sub)


@pytest.mark.parametrize(
    ("namespace", "value", "expected"),
    [
        ("foo", "sleep", r"spiffe://.+/ns/foo/(.+/|)sa/sleep(/.+)?"),
        ("foo", "bar/curl", r"spiffe://.+/ns/bar/(.+/|)sa/curl(/.+)?"),
        ("foo", "a.b", r"spiffe://.+/ns/foo/(.+/|)sa/a\.b(/.+)?"),
    ],
    ids=["policy-namespace", "own-namespace", "dot-escaped"],
)
def test_service_accounts_match_the_peer_spiffe_id(namespace: str, value: str, expected: str) -> None:
    rule = AuthorizationRule(sources=(AuthorizationSource(service_accounts=(value,), not_service_accounts=("x",)),))
    policy = build_policy(rule, action="ALLOW", namespace=namespace, for_tcp=True)  # not HTTP only
    assert list(policy.principals) == [
        and_ids(
            any_of_ids(authenticated(regex(expected))),
            Principal(not_id=any_of_ids(authenticated(regex(rf"spiffe://.+/ns/{namespace}/(.+/|)sa/x(/.+)?")))),
        )
    ]


def test_service_accounts_of_equal_rules_in_two_namespaces_compile_apart(make_meta: MakeMeta) -> None:
    rule = AuthorizationRule(sources=(AuthorizationSource(service_accounts=("sleep",)),))
    policies = [
        AuthorizationPolicy(meta=make_meta("AuthorizationPolicy", name="p", namespace=ns), rules=(rule,))
        for ns in ("a", "b")
    ]
    rbac = build_rbac(policies, action="ALLOW")
    regexes = [
        rbac.policies[policy_name(ns, "p", 0)].principals[0].and_ids.ids[0].or_ids.ids[0].authenticated.principal_name
        for ns in ("a", "b")
    ]
    assert [r.safe_regex.regex for r in regexes] == [
        r"spiffe://.+/ns/a/(.+/|)sa/sleep(/.+)?",
        r"spiffe://.+/ns/b/(.+/|)sa/sleep(/.+)?",
    ]


def test_source_fields_are_anded_in_istio_order() -> None:
    """principals, requestPrincipals, namespaces, remoteIpBlocks, ipBlocks, then the when conditions."""
    rule = AuthorizationRule(
        sources=(
            AuthorizationSource(
                ip_blocks=("1.2.3.4",), namespaces=("ns",), principals=("p",), remote_ip_blocks=("5.6.7.8",)
            ),
        ),
        when=(AuthorizationCondition(key="source.ip", values=("9.9.9.9",)),),
    )
    [principal] = build_policy(rule, action="ALLOW").principals
    assert principal == and_ids(
        any_of_ids(authenticated(exact("spiffe://p"))),
        any_of_ids(authenticated(regex(".*/ns/ns/.*"))),
        any_of_ids(Principal(remote_ip=cidr("5.6.7.8", 32))),
        any_of_ids(Principal(direct_remote_ip=cidr("1.2.3.4", 32))),
        any_of_ids(Principal(direct_remote_ip=cidr("9.9.9.9", 32))),
    )


# ------------------------------------------------------------------------------------------------ to.operation


def test_hosts_match_authority_ignoring_case() -> None:
    permission = only_permission(to_operation(hosts=("a.com", "*.b.com", "c.*", "*"), not_hosts=("x.com",)))

    def authority(matcher: StringMatcher | None = None) -> Permission:
        if matcher is None:
            return Permission(header=HeaderMatcher(name=":authority", present_match=True))
        return Permission(header=HeaderMatcher(name=":authority", string_match=matcher))

    assert permission == and_rules(
        any_of_rules(
            authority(exact("a.com", ignore_case=True)),
            authority(StringMatcher(suffix=".b.com", ignore_case=True)),
            authority(StringMatcher(prefix="c.", ignore_case=True)),
            authority(),
        ),
        Permission(not_rule=any_of_rules(authority(exact("x.com", ignore_case=True)))),
    )


def test_methods_match_the_method_pseudo_header() -> None:
    permission = only_permission(to_operation(methods=("GET", "*"), not_methods=("DELETE",)))
    assert permission == and_rules(
        any_of_rules(
            Permission(header=HeaderMatcher(name=":method", string_match=exact("GET"))),
            Permission(header=HeaderMatcher(name=":method", present_match=True)),
        ),
        Permission(
            not_rule=any_of_rules(Permission(header=HeaderMatcher(name=":method", string_match=exact("DELETE"))))
        ),
    )


def test_paths_match_url_path_exact_prefix_suffix_and_any() -> None:
    permission = only_permission(to_operation(paths=("/a", "/b/*", "*.png", "*"), not_paths=("/admin*",)))

    def path(matcher: StringMatcher) -> Permission:
        return Permission(url_path=PathMatcher(path=matcher))

    assert permission == and_rules(
        any_of_rules(
            path(exact("/a")), path(StringMatcher(prefix="/b/")), path(StringMatcher(suffix=".png")), path(regex(".+"))
        ),
        Permission(not_rule=any_of_rules(path(StringMatcher(prefix="/admin")))),
    )


def test_ports_are_destination_ports_after_translation() -> None:
    rule = AuthorizationRule(operations=(AuthorizationOperation(ports=(19080, 9080, 7777), not_ports=(19080,)),))
    [permission] = build_policy(rule, action="ALLOW", ports={19080: 9080}).permissions
    assert permission == and_rules(
        any_of_rules(
            Permission(destination_port=9080), Permission(destination_port=9080), Permission(destination_port=7777)
        ),
        Permission(not_rule=any_of_rules(Permission(destination_port=9080))),
    )


def test_operation_fields_are_anded_in_istio_order() -> None:
    """hosts, methods, paths, ports, then the when conditions."""
    rule = AuthorizationRule(
        operations=(AuthorizationOperation(ports=(80,), paths=("/p",), methods=("GET",), hosts=("h",)),),
        when=(AuthorizationCondition(key="destination.port", values=("81",)),),
    )
    [permission] = build_policy(rule, action="ALLOW").permissions
    assert [next(iter(r.or_rules.rules[0].ListFields()))[0].name for r in permission.and_rules.rules] == [
        "header",
        "header",
        "url_path",
        "destination_port",
        "destination_port",
    ]
    assert permission.and_rules.rules[0].or_rules.rules[0].header.name == ":authority"
    assert permission.and_rules.rules[1].or_rules.rules[0].header.name == ":method"


def test_several_sources_and_operations_are_alternatives() -> None:
    rule = AuthorizationRule(
        sources=(AuthorizationSource(principals=("a",)), AuthorizationSource(namespaces=("b",))),
        operations=(AuthorizationOperation(methods=("GET",)), AuthorizationOperation(ports=(80,))),
    )
    policy = build_policy(rule, action="ALLOW")
    assert list(policy.principals) == [
        and_ids(any_of_ids(authenticated(exact("spiffe://a")))),
        and_ids(any_of_ids(authenticated(regex(".*/ns/b/.*")))),
    ]
    assert list(policy.permissions) == [
        and_rules(any_of_rules(Permission(header=HeaderMatcher(name=":method", string_match=exact("GET"))))),
        and_rules(any_of_rules(Permission(destination_port=80))),
    ]


# ------------------------------------------------------------------------------------------------ when


@pytest.mark.parametrize(
    ("key", "value", "principal"),
    [
        ("request.headers[x-user]", "al", Principal(header=HeaderMatcher(name="x-user", string_match=exact("al")))),
        ("request.headers[x-user]", "*", Principal(header=HeaderMatcher(name="x-user", present_match=True))),
        ("source.ip", "10.1.0.0/16", Principal(direct_remote_ip=cidr("10.1.0.0", 16))),
        ("remote.ip", "10.1.2.3", Principal(remote_ip=cidr("10.1.2.3", 32))),
        ("source.namespace", "prod", authenticated(regex(".*/ns/prod/.*"))),
        ("source.principal", "cluster.local/ns/a/sa/b", authenticated(exact("spiffe://cluster.local/ns/a/sa/b"))),
        ("request.auth.principal", "iss/sub", token(exact("iss"), exact("sub"))),
        ("request.auth.audiences", "aud", claim("aud", value=exact("aud"))),
        ("request.auth.presenter", "p*", claim("azp", value=StringMatcher(prefix="p"))),
        ("request.auth.claims[groups]", "group1", claim("groups", value=exact("group1"))),
        ("request.auth.claims[nested][key1]", "value*", claim("nested", "key1", value=StringMatcher(prefix="value"))),
    ],
)  # fmt: skip
def test_when_source_keys_become_principals(key: str, value: str, principal: Principal) -> None:
    rule = AuthorizationRule(when=(AuthorizationCondition(key=key, values=(value,), not_values=(value,)),))
    policy = build_policy(rule, action="ALLOW")
    assert list(policy.permissions) == [ANY_PERMISSION]
    assert list(policy.principals) == [and_ids(any_of_ids(principal), Principal(not_id=any_of_ids(principal)))]


@pytest.mark.parametrize(
    ("key", "value", "permission"),
    [
        ("destination.ip", "127.0.0.21", Permission(destination_ip=cidr("127.0.0.21", 32))),
        ("destination.port", "19080", Permission(destination_port=9080)),  # translated like ports
        ("destination.port", "5000", Permission(destination_port=5000)),
        ("connection.sni", "*.example.com", Permission(requested_server_name=StringMatcher(suffix=".example.com"))),
    ],
)
def test_when_destination_keys_become_permissions(key: str, value: str, permission: Permission) -> None:
    rule = AuthorizationRule(when=(AuthorizationCondition(key=key, values=(value,)),))
    policy = build_policy(rule, action="ALLOW", ports={19080: 9080})
    assert list(policy.principals) == [ANY_PRINCIPAL]
    assert list(policy.permissions) == [and_rules(any_of_rules(permission))]


@pytest.mark.parametrize(
    ("action", "policies"),
    [
        ("DENY", ["ns[default]-policy[p]-rule[0]", "ns[default]-policy[p]-rule[1]"]),  # rule 0 matches more
        ("ALLOW", ["ns[default]-policy[p]-rule[1]"]),  # rule 0 is left out: allows less
    ],
    ids=["deny-wider", "allow-smaller"],
)
def test_a_when_key_that_does_not_compile_fails_closed(
    make_meta: MakeMeta, action: RbacAction, policies: list[str]
) -> None:
    """Validation rejects such keys (same table); a rule built without validation never makes a policy weaker."""
    policy = AuthorizationPolicy(
        meta=make_meta("AuthorizationPolicy", "p"),
        action=action,
        rules=(
            AuthorizationRule(when=(AuthorizationCondition(key="request.size", values=("1",)),)),
            AuthorizationRule(),
        ),
    )
    with structlog.testing.capture_logs() as logs:
        rbac = build_rbac([policy], action=action)
    assert sorted(rbac.policies) == policies
    if action == "DENY":
        assert rbac.policies[policies[0]] == Policy(permissions=[ANY_PERMISSION], principals=[ANY_PRINCIPAL])
    assert ("authorization_condition_not_compiled", "warning") in [(e["event"], e["log_level"]) for e in logs]


def test_every_condition_kind_validation_accepts_has_a_generator() -> None:
    assert compiled_condition_kinds() == frozenset(ConditionKind)


# ------------------------------------------------------------------------------------------------ policies


def test_rule_without_conditions_matches_everything() -> None:
    assert build_policy(AuthorizationRule(), action="ALLOW") == Policy(
        permissions=[ANY_PERMISSION], principals=[ANY_PRINCIPAL]
    )


def test_one_envoy_policy_per_rule_named_like_istio(make_meta: MakeMeta) -> None:
    first = AuthorizationPolicy(
        meta=make_meta("AuthorizationPolicy", "first", "team"),
        rules=(AuthorizationRule(), AuthorizationRule(sources=(AuthorizationSource(principals=("a",)),))),
    )
    second = AuthorizationPolicy(meta=make_meta("AuthorizationPolicy", "second"), rules=(AuthorizationRule(),))
    rbac = build_rbac([first, second], action="ALLOW")
    assert rbac.action == RBAC.ALLOW
    assert sorted(rbac.policies) == [
        "ns[default]-policy[second]-rule[0]",
        "ns[team]-policy[first]-rule[0]",
        "ns[team]-policy[first]-rule[1]",
    ]
    assert rbac.policies["ns[team]-policy[first]-rule[1]"] == build_policy(first.rules[1], action="ALLOW")
    assert policy_name("a", "b", 2, custom=True) == "istio-ext-authz-ns[a]-policy[b]-rule[2]"
    custom = build_rbac([second], action="DENY", custom=True)
    assert list(custom.policies) == ["istio-ext-authz-ns[default]-policy[second]-rule[0]"]


@pytest.mark.parametrize(("action", "value"), [("ALLOW", RBAC.ALLOW), ("DENY", RBAC.DENY), ("LOG", RBAC.LOG)])
def test_policy_without_rules_never_matches(make_meta: MakeMeta, action: Any, value: int) -> None:
    policy = AuthorizationPolicy(meta=make_meta("AuthorizationPolicy", "none"), action="ALLOW")
    rbac = build_rbac([policy], action=action)
    assert rbac.action == value
    assert dict(rbac.policies) == {
        "ns[default]-policy[none]-rule[0]": Policy(
            permissions=[Permission(not_rule=Permission(any=True))], principals=[Principal(not_id=Principal(any=True))]
        )
    }


# ------------------------------------------------------------------------------------------------ compile cache


def test_a_rule_is_compiled_once_for_every_proxy_and_push(make_meta: MakeMeta, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listeners are built per proxy on every push: equal rules with equal options reuse one compilation."""
    compiled: list[AuthorizationRule] = []

    def counting(rule: AuthorizationRule, **options: Any) -> Policy:
        compiled.append(rule)
        return build_policy(rule, **options)

    monkeypatch.setattr(rbac_module, "build_policy", counting)
    rbac_module._compiled_rule.cache_clear()
    rule = AuthorizationRule(operations=(AuthorizationOperation(paths=("/admin",), ports=(19080,)),))
    first = AuthorizationPolicy(meta=make_meta("AuthorizationPolicy", "p"), rules=(rule,))
    again = AuthorizationPolicy(meta=make_meta("AuthorizationPolicy", "p"), rules=(rule,))  # the next snapshot's copy
    other = AuthorizationPolicy(meta=make_meta("AuthorizationPolicy", "q", "team"), rules=(rule,))
    expected = build_rbac([first], action="ALLOW", ports={19080: 9080})
    assert build_rbac([again], action="ALLOW", ports={19080: 9080}) == expected
    assert dict(build_rbac([other], action="ALLOW", ports={19080: 9080}).policies) == {
        "ns[team]-policy[q]-rule[0]": expected.policies["ns[default]-policy[p]-rule[0]"]
    }
    assert compiled == [rule]


def test_compiled_rules_are_keyed_by_the_rule_and_every_option(make_meta: MakeMeta) -> None:
    """No stale result: a changed rule, other ports, another action or TCP each compile anew."""

    def permission(rule: AuthorizationRule, **options: Any) -> Permission:
        policy = AuthorizationPolicy(meta=make_meta("AuthorizationPolicy", "p"), rules=(rule,))
        [generated] = build_rbac([policy], **options).policies.values()
        [only] = generated.permissions
        return only

    ports = AuthorizationRule(operations=(AuthorizationOperation(ports=(19080,), paths=("/a",)),))
    changed = AuthorizationRule(operations=(AuthorizationOperation(ports=(19080,), paths=("/b",)),))
    port_and_path = and_rules(
        any_of_rules(Permission(url_path=PathMatcher(path=exact("/a")))),
        any_of_rules(Permission(destination_port=9080)),
    )
    assert permission(ports, action="ALLOW", ports={19080: 9080}) == port_and_path
    assert permission(changed, action="ALLOW", ports={19080: 9080}) == and_rules(
        any_of_rules(Permission(url_path=PathMatcher(path=exact("/b")))),
        any_of_rules(Permission(destination_port=9080)),
    )
    assert permission(ports, action="ALLOW") == and_rules(
        any_of_rules(Permission(url_path=PathMatcher(path=exact("/a")))),
        any_of_rules(Permission(destination_port=19080)),
    )
    assert permission(ports, action="DENY", ports={19080: 9080}) == port_and_path
    assert permission(ports, action="DENY", for_tcp=True, ports={19080: 9080}) == and_rules(
        any_of_rules(Permission(destination_port=9080))
    )


def test_a_skipped_rule_is_logged_on_every_build_even_when_compiled_once(make_meta: MakeMeta) -> None:
    rule = AuthorizationRule(operations=(AuthorizationOperation(paths=("/x",)),))  # HTTP only: left out on TCP
    policy = AuthorizationPolicy(meta=make_meta("AuthorizationPolicy", "p"), action="ALLOW", rules=(rule,))
    with structlog.testing.capture_logs() as logs:
        assert build_rbac([policy], action="ALLOW", for_tcp=True) == RBAC(action=RBAC.ALLOW)
        assert build_rbac([policy], action="ALLOW", for_tcp=True) == RBAC(action=RBAC.ALLOW)
    assert [(e["event"], e["log_level"], e["policy"]) for e in logs] == [
        ("authorization_rule_skipped", "debug", "AuthorizationPolicy/default/p")
    ] * 2


# ------------------------------------------------------------------------------------------------ TCP

HTTP_AND_TCP = AuthorizationRule(
    sources=(AuthorizationSource(namespaces=("ns",), request_principals=("iss/sub",)),),
    operations=(AuthorizationOperation(ports=(80,), methods=("GET",), paths=("/x",), hosts=("h",)),),
    when=(AuthorizationCondition(key="request.headers[x-a]", values=("1",)),),
)


def test_tcp_allow_drops_rules_with_http_only_fields(make_meta: MakeMeta) -> None:
    """Fail closed: the ALLOW config keeps only rules that mean the same on TCP (Istio's checkError)."""
    policy = AuthorizationPolicy(
        meta=make_meta("AuthorizationPolicy", "p"),
        rules=(HTTP_AND_TCP, AuthorizationRule(operations=(AuthorizationOperation(ports=(80,)),))),
    )
    rbac = build_rbac([policy], action="ALLOW", for_tcp=True)
    assert list(rbac.policies) == ["ns[default]-policy[p]-rule[1]"]
    only_http = AuthorizationPolicy(meta=make_meta("AuthorizationPolicy", "q"), rules=(HTTP_AND_TCP,))
    denies_all = build_rbac([only_http], action="ALLOW", for_tcp=True)
    assert denies_all == RBAC(action=RBAC.ALLOW)  # ALLOW without policies: Envoy denies every connection
    assert list(build_rbac([only_http], action="ALLOW").policies) == ["ns[default]-policy[q]-rule[0]"]  # HTTP: kept


@pytest.mark.parametrize("action", ["DENY", "LOG"])
def test_tcp_deny_and_audit_drop_only_the_http_values(action: Any) -> None:
    """More denying: what cannot be checked on TCP is left out of the rule, the rest still applies."""
    policy = build_policy(HTTP_AND_TCP, action=action, for_tcp=True)
    assert list(policy.principals) == [and_ids(any_of_ids(authenticated(regex(".*/ns/ns/.*"))))]
    assert list(policy.permissions) == [and_rules(any_of_rules(Permission(destination_port=80)))]


def test_tcp_deny_with_only_http_values_matches_everything() -> None:
    rule = AuthorizationRule(operations=(AuthorizationOperation(paths=("/admin",)),))
    assert build_policy(rule, action="DENY", for_tcp=True) == Policy(
        permissions=[ANY_PERMISSION], principals=[ANY_PRINCIPAL]
    )


def test_invalid_ip_follows_the_same_rule_as_tcp() -> None:
    """Validation rejects such values; were one to come, DENY leaves its whole field out (matches more, never a
    narrower OR of the values left), ALLOW leaves the rule out."""
    rule = AuthorizationRule(sources=(AuthorizationSource(ip_blocks=("not-an-ip", "10.0.0.1")),))
    with pytest.raises(ValueError, match="not-an-ip"):
        build_policy(rule, action="ALLOW")
    assert list(build_policy(rule, action="DENY").principals) == [ANY_PRINCIPAL]


# ------------------------------------------------------------------------------------------------ validation = compiler

SAMPLE_CONDITIONS = {
    ConditionKind.REQUEST_HEADER: ("request.headers[x-user]", "alice"),
    ConditionKind.SOURCE_IP: ("source.ip", "10.0.0.1"),
    ConditionKind.REMOTE_IP: ("remote.ip", "10.0.0.0/8"),
    ConditionKind.SOURCE_NAMESPACE: ("source.namespace", "default"),
    ConditionKind.SOURCE_PRINCIPAL: ("source.principal", "cluster.local/ns/default/sa/x"),
    ConditionKind.AUTH_PRINCIPAL: ("request.auth.principal", "iss/sub"),
    ConditionKind.AUTH_AUDIENCES: ("request.auth.audiences", "aud"),
    ConditionKind.AUTH_PRESENTER: ("request.auth.presenter", "client"),
    ConditionKind.AUTH_CLAIMS: ("request.auth.claims[groups][admin]", "yes"),
    ConditionKind.DESTINATION_IP: ("destination.ip", "127.0.0.21"),
    ConditionKind.DESTINATION_PORT: ("destination.port", "9080"),
    ConditionKind.CONNECTION_SNI: ("connection.sni", "*.example.com"),
}


def _deny_policy(key: str, value: str) -> str:
    return (
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\n"
        f"spec:\n  action: DENY\n  rules:\n  - when:\n    - key: {key!r}\n      values: [{value!r}]\n"
    )


@pytest.mark.parametrize("kind", list(ConditionKind), ids=[kind.name for kind in ConditionKind])
def test_every_when_key_validation_accepts_compiles_into_the_deny_rule(kind: ConditionKind) -> None:
    key, value = SAMPLE_CONDITIONS[kind]
    parsed = parse_config_text(_deny_policy(key, value), "p.yaml")
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    (policy,) = parsed.resources
    assert isinstance(policy, AuthorizationPolicy)
    with structlog.testing.capture_logs() as logs:
        rbac = build_rbac([policy], action="DENY")
    assert not logs
    (compiled,) = rbac.policies.values()
    assert compiled != Policy(permissions=[ANY_PERMISSION], principals=[ANY_PRINCIPAL])  # the condition is in it


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("experimental.envoy.filters.network.mysql_proxy[db.table]", "not supported by meshplane yet"),
        ("request.size", "unknown attribute 'request.size'"),
        ("request.headers[x]y]", "expected the form name[key]"),
    ],
    ids=["experimental", "unknown", "malformed-map-key"],
)
def test_a_when_key_the_compiler_cannot_compile_is_a_validation_error(key: str, message: str) -> None:
    (rejected,) = parse_config_text(_deny_policy(key, "x"), "p.yaml").rejected
    found = [(e.origin.line, e.path) for e in rejected.errors if message in e.message]
    assert found == [(8, "spec.rules[0].when[0].key")]
