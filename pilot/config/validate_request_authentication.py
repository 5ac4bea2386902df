"""Validate a RequestAuthentication spec into ``types.RequestAuthentication`` (Istio's
``ValidateRequestAuthentication`` / ``validateJwtRule``), each problem at its field.

- ``selector.matchLabels``: Kubernetes labels; empty is no selector (namespace-wide, mesh-wide in the root
  namespace).
- ``jwtRules[].issuer``: required unless ``jwksUri`` is set (Istio: "issuer or jwksUri must be non-empty string";
  without an issuer, tokens of any ``iss`` signed by those keys are accepted).
- ``audiences``, ``fromParams``, ``fromCookies``, ``spaceDelimitedClaims``: no empty strings.
- ``jwksUri``: an ``http://`` or ``https://`` URL with a host (Istio's ``ParseJwksURI``); Envoy fetches it through
  the outbound cluster of that host and port (``pilot.generate.jwt_authn``).
- ``jwks``: the JSON Web Key Set parses: a JSON object with a non-empty ``keys`` list, each key with a ``kty`` Envoy
  knows (RSA with ``n``/``e``, EC with ``crv``/``x``/``y``, oct with ``k``, OKP with ``crv``/``x``); RSA and EC keys
  must load as public keys.
- Only one of ``jwks`` / ``jwksUri`` (Istio's reference: "only one of jwksUri and jwks should be used"); one of them
  is required: meshplane does not discover keys from the issuer's OpenID configuration.
- ``fromHeaders[].name``: a header name (Envoy's rule); ``prefix``: a header value. ``outputPayloadToHeader`` and
  ``outputClaimToHeaders[].header``: header names; ``outputClaimToHeaders[].claim``: required.
- ``timeout``: a duration (at least 1 ms).

``targetRef`` / ``targetRefs`` attach a policy to Gateway API gateways and waypoint Services: meshplane has neither,
so they are rejected with that reason (``istio_api.UNSUPPORTED_REASONS``; use ``selector``).
"""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pilot.config.types import ClaimToHeader, ConfigMeta, JwtHeader, JwtRule, RequestAuthentication
from pilot.config.validate_common import Fields, selector_labels
from pilot.config.validate_envoy_strings import header_name_error, header_value_error

__all__ = [
    "REQUEST_AUTHENTICATION_FIELDS",
    "jwks_error",
    "jwks_uri_error",
    "validate_request_authentication",
]

REQUEST_AUTHENTICATION_FIELDS = ("selector", "jwtRules")
_RULE_FIELDS = (
    "issuer",
    "audiences",
    "jwksUri",
    "jwks",
    "fromHeaders",
    "fromParams",
    "fromCookies",
    "outputPayloadToHeader",
    "outputClaimToHeaders",
    "forwardOriginalToken",
    "timeout",
    "spaceDelimitedClaims",
)
_HEADER_FIELDS = ("name", "prefix")
_CLAIM_FIELDS = ("header", "claim")
_KEY_MEMBERS = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "oct": ("k",), "OKP": ("crv", "x")}
_EC_CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}


def validate_request_authentication(spec: Fields, meta: ConfigMeta) -> RequestAuthentication:
    """Check a RequestAuthentication spec (opened with ``REQUEST_AUTHENTICATION_FIELDS``); problems go to
    ``spec.problems``."""
    selector = selector_labels(spec)
    rules = tuple(_rule(rule) for rule in spec.mappings("jwtRules", known=_RULE_FIELDS, message="JWTRule"))
    return RequestAuthentication(meta=meta, selector=selector, jwt_rules=rules)


def jwks_uri_error(uri: str) -> str | None:
    """Why ``uri`` is not a JWKS URL Envoy can fetch (Istio's ``ParseJwksURI``: http or https, a host)."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        return f"invalid jwksUri {uri!r}: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"invalid jwksUri {uri!r}: the scheme must be http or https"
    if not parts.hostname:
        return f"invalid jwksUri {uri!r}: no host"
    if port == 0:
        return f"invalid jwksUri {uri!r}: port 0"
    return None


def jwks_error(text: str) -> str | None:
    """Why ``text`` is not a JSON Web Key Set Envoy can use (see the module doc), or None."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        return f"jwks parse error: not JSON ({exc})"
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        return 'jwks parse error: expected a JSON object with a non-empty "keys" list'
    for index, key in enumerate(keys):
        problem = _key_error(key)
        if problem is not None:
            return f"jwks parse error: keys[{index}]: {problem}"
    return None


def _key_error(key: object) -> str | None:
    if not isinstance(key, dict):
        return "expected a JSON object"
    kty = key.get("kty")
    members = _KEY_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        return f'"kty" must be one of {", ".join(_KEY_MEMBERS)}, got {kty!r}'
    missing = [name for name in members if not isinstance(key.get(name), str) or not key.get(name)]
    if missing:
        return f"a {kty} key needs {', '.join(repr(name) for name in missing)}"
    try:
        _load_public_key(str(kty), key)
    except (ValueError, binascii.Error) as exc:
        return f"not a usable {kty} public key: {exc}"
    return None


def _b64url_int(value: str) -> int:
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    return int.from_bytes(raw, "big")


def _load_public_key(kty: str, key: dict[str, str]) -> None:
    if kty == "RSA":
        rsa.RSAPublicNumbers(e=_b64url_int(key["e"]), n=_b64url_int(key["n"])).public_key()
    elif kty == "EC":
        curve = _EC_CURVES.get(key["crv"])
        if curve is None:
            raise ValueError(f"curve {key['crv']!r} is not one of {', '.join(_EC_CURVES)}")
        ec.EllipticCurvePublicNumbers(x=_b64url_int(key["x"]), y=_b64url_int(key["y"]), curve=curve).public_key()
    else:
        base64.urlsafe_b64decode(key["k" if kty == "oct" else "x"] + "==")


def _rule(rule: Fields) -> JwtRule:
    issuer = rule.string("issuer")
    jwks_uri = rule.string("jwksUri") or ""
    if not issuer and not jwks_uri:
        rule.report("issuer", "issuer or jwksUri must be a non-empty string")
    jwks = rule.string("jwks") or ""
    if jwks_uri:
        rule.problems.add_if(rule.at("jwksUri"), jwks_uri_error(jwks_uri))
    if jwks:
        rule.problems.add_if(rule.at("jwks"), jwks_error(jwks))
    if jwks and jwks_uri:
        rule.report(None, "only one of jwks, jwksUri may be set (Istio: only one of them should be used)")
    elif not jwks and not jwks_uri:
        rule.report(
            None,
            "one of jwksUri or jwks is required: finding the keys from the issuer's OpenID configuration is not "
            "supported by meshplane yet",
        )
    payload_header = rule.string("outputPayloadToHeader") or ""
    if payload_header:
        rule.problems.add_if(rule.at("outputPayloadToHeader"), header_name_error(payload_header))
    return JwtRule(
        issuer=issuer or "",
        audiences=_non_empty(rule, "audiences", "audience"),
        jwks_uri=jwks_uri,
        jwks=jwks,
        from_headers=tuple(
            _header(entry) for entry in rule.mappings("fromHeaders", known=_HEADER_FIELDS, message="JWTHeader")
        ),
        from_params=_non_empty(rule, "fromParams", "location query"),
        from_cookies=_non_empty(rule, "fromCookies", "cookie name"),
        output_payload_to_header=payload_header,
        output_claim_to_headers=tuple(
            _claim(entry)
            for entry in rule.mappings("outputClaimToHeaders", known=_CLAIM_FIELDS, message="ClaimToHeader")
        ),
        forward_original_token=bool(rule.boolean("forwardOriginalToken")),
        timeout=rule.timeout("timeout"),
        space_delimited_claims=_non_empty(rule, "spaceDelimitedClaims", "claim name"),
    )


def _non_empty(rule: Fields, name: str, what: str) -> tuple[str, ...]:
    values = rule.strings(name) or ()
    for index, value in enumerate(values):
        if not value:
            rule.problems.add(rule.at(name, index), f"{what} must be a non-empty string")
    return values


def _header(entry: Fields) -> JwtHeader:
    name = entry.string("name", required=True) or ""
    if name:
        entry.problems.add_if(entry.at("name"), header_name_error(name))
    prefix = entry.string("prefix") or ""
    entry.problems.add_if(entry.at("prefix"), header_value_error(prefix, "prefix"))
    return JwtHeader(name=name, prefix=prefix)


def _claim(entry: Fields) -> ClaimToHeader:
    header = entry.string("header", required=True) or ""
    claim = entry.string("claim", required=True) or ""
    if header:
        entry.problems.add_if(entry.at("header"), header_name_error(header))
    return ClaimToHeader(header=header, claim=claim)
