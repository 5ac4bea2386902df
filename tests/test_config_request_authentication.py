"""RequestAuthentication: Istio's ValidateRequestAuthentication / validateJwtRule checks (issuer or jwksUri, jwksUri
an http(s) URL, jwks parses, header names, non-empty values, durations), targetRef rejected with its reason, every
problem at its line and field path, and the exact dataclasses of accepted policies."""

from __future__ import annotations

import json

import pytest

from e2e.jwt_tokens import signing_key
from pilot.config.types import ClaimToHeader, JwtHeader, JwtRule, RequestAuthentication, frozen_labels
from tests.conftest import ApiGroupDocs, assert_rejected_with

KIND = "RequestAuthentication"
JWKS = signing_key("validation").jwks
JWKS_URI = "https://raw.githubusercontent.com/istio/istio/master/security/tools/jwt/samples/jwks.json"


def accepted(docs: ApiGroupDocs, body: str) -> RequestAuthentication:
    resource = docs.accepted(KIND, body)
    assert isinstance(resource, RequestAuthentication)
    return resource


def test_istio_s_task_policy_lands_in_the_dataclass(security_docs: ApiGroupDocs) -> None:
    """The "JWT authentication" task's policy, every other field added."""
    body = (
        "selector:\n  matchLabels:\n    app: httpbin\njwtRules:\n"
        f'- issuer: "testing@secure.istio.io"\n  jwksUri: "{JWKS_URI}"\n'
        "  audiences: [bookinfo]\n  fromHeaders:\n  - name: x-jwt-assertion\n    prefix: 'Bearer '\n"
        "  fromParams: [my_token]\n  fromCookies: [session]\n  outputPayloadToHeader: x-jwt-payload\n"
        "  outputClaimToHeaders:\n  - header: x-jwt-claim-foo\n    claim: foo\n"
        "  forwardOriginalToken: true\n  timeout: 10s\n  spaceDelimitedClaims: [roles]\n"
        f"- issuer: other\n  jwks: '{JWKS}'\n"
    )
    policy = accepted(security_docs, body)
    assert policy == RequestAuthentication(
        meta=policy.meta,
        selector=frozen_labels({"app": "httpbin"}),
        jwt_rules=(
            JwtRule(
                issuer="testing@secure.istio.io",
                jwks_uri=JWKS_URI,
                audiences=("bookinfo",),
                from_headers=(JwtHeader(name="x-jwt-assertion", prefix="Bearer "),),
                from_params=("my_token",),
                from_cookies=("session",),
                output_payload_to_header="x-jwt-payload",
                output_claim_to_headers=(ClaimToHeader(header="x-jwt-claim-foo", claim="foo"),),
                forward_original_token=True,
                timeout=10.0,
                space_delimited_claims=("roles",),
            ),
            JwtRule(issuer="other", jwks=JWKS),
        ),
    )


@pytest.mark.parametrize(
    ("body", "issuer"),
    [("jwtRules: [{jwksUri: 'http://jwks.foo:8000/jwks'}]", ""), ("{}", None), ("jwtRules: []", None)],
    ids=["jwks-uri-without-issuer", "no-rules", "empty-rules"],
)
def test_accepted_as_istio_does(security_docs: ApiGroupDocs, body: str, issuer: str | None) -> None:
    policy = accepted(security_docs, body)
    assert [rule.issuer for rule in policy.jwt_rules] == ([] if issuer is None else [issuer])


EC_KEY = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
          "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}  # RFC 7517 appendix A.1  # fmt: skip
RULE = "jwtRules:\n- issuer: iss\n"

REJECTIONS = [
    ("no-issuer-no-uri", f"jwtRules:\n- jwks: '{JWKS}'", [(2, "spec.jwtRules[0].issuer", "issuer or jwksUri must")]),
    (
        "no-keys",
        RULE,
        [(2, "spec.jwtRules[0]", "one of jwksUri or jwks is required: finding the keys from the issuer's OpenID")],
    ),
    (
        "both-keys",
        f"{RULE}  jwksUri: http://a/jwks\n  jwks: '{JWKS}'",
        [(2, "spec.jwtRules[0]", "only one of jwks, jwksUri may be set")],
    ),
    (
        "uri-scheme",
        f"{RULE}  jwksUri: ftp://a/jwks",
        [(3, "spec.jwtRules[0].jwksUri", "invalid jwksUri 'ftp://a/jwks': the scheme must be http or https")],
    ),
    ("uri-no-host", f"{RULE}  jwksUri: 'http:///jwks'", [(3, "spec.jwtRules[0].jwksUri", "no host")]),
    ("uri-bad-port", f"{RULE}  jwksUri: 'http://a:99999/jwks'", [(3, "spec.jwtRules[0].jwksUri", "invalid jwksUri")]),
    ("jwks-not-json", f"{RULE}  jwks: 'keys'", [(3, "spec.jwtRules[0].jwks", "jwks parse error: not JSON")]),
    ("jwks-no-keys", f"{RULE}  jwks: '{{}}'", [(3, "spec.jwtRules[0].jwks", 'non-empty "keys" list')]),
    (
        "jwks-unknown-kty",
        f"""{RULE}  jwks: '{{"keys": [{{"kty": "DSA"}}]}}'""",
        [(3, "spec.jwtRules[0].jwks", "keys[0]: \"kty\" must be one of RSA, EC, oct, OKP, got 'DSA'")],
    ),
    (
        "jwks-rsa-without-n",
        f"""{RULE}  jwks: '{{"keys": [{{"kty": "RSA", "e": "AQAB"}}]}}'""",
        [(3, "spec.jwtRules[0].jwks", "keys[0]: a RSA key needs 'n'")],
    ),
    (
        "jwks-ec-off-curve",
        f"{RULE}  jwks: '{json.dumps({'keys': [{**EC_KEY, 'y': EC_KEY['x']}]})}'",
        [(3, "spec.jwtRules[0].jwks", "keys[0]: not a usable EC public key")],
    ),
    (
        "empty-values",
        f"{RULE}  jwks: '{JWKS}'\n  audiences: ['']\n  fromParams: ['']\n  fromCookies: ['']",
        [
            (4, "spec.jwtRules[0].audiences[0]", "audience must be a non-empty string"),
            (5, "spec.jwtRules[0].fromParams[0]", "location query must be a non-empty string"),
            (6, "spec.jwtRules[0].fromCookies[0]", "cookie name must be a non-empty string"),
        ],
    ),
    (
        "header-names",
        f"{RULE}  jwks: '{JWKS}'\n  fromHeaders: [{{name: 'a b'}}, {{prefix: x}}]\n  outputPayloadToHeader: 'x:y'\n"
        "  outputClaimToHeaders: [{header: 'a b', claim: sub}, {header: x}]",
        [
            (4, "spec.jwtRules[0].fromHeaders[0].name", "'a b' is not a valid HTTP header name"),
            (4, "spec.jwtRules[0].fromHeaders[1].name", "required field is missing"),
            (5, "spec.jwtRules[0].outputPayloadToHeader", "'x:y' is not a valid HTTP header name"),
            (6, "spec.jwtRules[0].outputClaimToHeaders[0].header", "'a b' is not a valid HTTP header name"),
            (6, "spec.jwtRules[0].outputClaimToHeaders[1].claim", "required field is missing"),
        ],
    ),
    ("timeout", f"{RULE}  jwks: '{JWKS}'\n  timeout: soon", [(4, "spec.jwtRules[0].timeout", "soon")]),
    (
        "target-ref",
        "targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gw}",
        [(1, "spec.targetRef", "not supported by meshplane yet: it attaches a policy to Gateway API gateways")],
    ),
    (
        "rule-unknown-field",
        f"{RULE}  jwks_uri: http://a",
        [
            (3, "spec.jwtRules[0].jwks_uri", "unknown field 'jwks_uri' (did you mean 'jwksUri'?)"),
            (2, "spec.jwtRules[0]", "one of jwksUri or jwks is required"),
        ],
    ),
    ("selector-wildcard", "selector: {matchLabels: {app: '*'}}", [(1, "spec.selector.matchLabels.app", "invalid")]),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in REJECTIONS], ids=[c[0] for c in REJECTIONS])
def test_rejected(security_docs: ApiGroupDocs, body: str, expected: list[tuple[int, str, str]]) -> None:
    assert_rejected_with(security_docs, KIND, body, expected)
