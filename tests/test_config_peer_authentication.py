"""PeerAuthentication: security.istio.io API versions, modes, selectors and port-level modes, every problem reported
with its line and field path."""

from __future__ import annotations

import textwrap

import pytest

from pilot.config.parse import parse_config_text
from pilot.config.types import PeerAuthentication
from tests.conftest import IstioDocs

KIND = "PeerAuthentication"


class SecurityDocs(IstioDocs):
    """IstioDocs for ``security.istio.io/v1`` documents (same 6-line header)."""

    def doc(self, kind: str, body: str, *, name: str = "r", namespace: str = "ns") -> str:
        return (
            super()
            .doc(kind, body, name=name, namespace=namespace)
            .replace("apiVersion: networking.istio.io/v1\n", "apiVersion: security.istio.io/v1\n", 1)
        )


@pytest.fixture
def security() -> SecurityDocs:
    return SecurityDocs()


def accepted(security: SecurityDocs, body: str) -> PeerAuthentication:
    resource = security.accepted(KIND, body)
    assert isinstance(resource, PeerAuthentication)
    return resource


@pytest.mark.parametrize("api_version", ["security.istio.io/v1", "security.istio.io/v1beta1"])
def test_security_api_versions_are_accepted(api_version: str) -> None:
    text = f"apiVersion: {api_version}\nkind: PeerAuthentication\nmetadata: {{name: default}}\nspec: {{}}\n"
    (resource,) = parse_config_text(text, "pa.yaml").resources
    assert isinstance(resource, PeerAuthentication)
    assert resource.meta.key.namespace == "default"


def test_networking_api_version_is_not_a_peer_authentication() -> None:
    text = "apiVersion: networking.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: d}\nspec: {}\n"
    (rejected,) = parse_config_text(text, "pa.yaml").rejected
    (error,) = rejected.errors
    assert "apiVersion: invalid value 'networking.istio.io/v1': expected one of security.istio.io/v1" in str(error)


def test_peer_authentication_is_no_longer_skipped() -> None:
    text = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: d}\nspec: {}\n"
    assert not parse_config_text(text, "pa.yaml").warnings


@pytest.mark.parametrize(
    ("body", "selector", "mode", "ports"),
    [
        ("{}", None, "UNSET", {}),
        ("mtls: {mode: STRICT}", None, "STRICT", {}),
        ("mtls: {}", None, "UNSET", {}),
        ("selector: {matchLabels: {}}\nmtls: {mode: DISABLE}", None, "DISABLE", {}),
        ("selector: {matchLabels: {app: db}}\nmtls: {mode: PERMISSIVE}", {"app": "db"}, "PERMISSIVE", {}),
        (
            "selector: {matchLabels: {app: db}}\nportLevelMtls:\n  5432: {mode: DISABLE}\n  '8080': {mode: UNSET}",
            {"app": "db"},
            "UNSET",
            {5432: "DISABLE", 8080: "UNSET"},
        ),
    ],
    ids=["empty", "strict", "mtls-without-mode", "empty-selector-is-namespace-wide", "selector", "port-level"],
)
def test_accepted(
    security: SecurityDocs, body: str, selector: dict[str, str] | None, mode: str, ports: dict[int, str]
) -> None:
    policy = accepted(security, body)
    assert (dict(policy.selector) if policy.selector is not None else None) == selector
    assert policy.mode == mode
    assert dict(policy.port_level_mtls) == ports


REJECTIONS = [
    ("mode-unknown", "mtls: {mode: STRICTER}", [(1, "spec.mtls.mode", "did you mean 'STRICT'?")]),
    ("mode-not-string", "mtls: {mode: 1}", [(1, "spec.mtls.mode", "expected a string, got integer 1")]),
    ("mtls-unknown-field", "mtls: {mod: STRICT}", [(1, "spec.mtls.mod", "did you mean 'mode'?")]),
    ("spec-unknown-field", "portLevelMTLS: {}", [(1, "spec.portLevelMTLS", "did you mean 'portLevelMtls'?")]),
    ("selector-unknown-field", "selector: {labels: {a: b}}", [(1, "spec.selector.labels", "unknown field")]),
    (
        "selector-wildcard",
        "selector:\n  matchLabels: {app: '*'}",
        [(2, "spec.selector.matchLabels.app", "invalid label value '*'")],
    ),
    (
        "selector-bad-label",
        "selector:\n  matchLabels: {'-app': db}",
        [(2, "spec.selector.matchLabels.-app", "invalid label key '-app'")],
    ),
    (
        "port-level-needs-selector",
        "mtls: {mode: STRICT}\nportLevelMtls:\n  8080: {mode: DISABLE}",
        [(2, "spec.portLevelMtls", "requires a selector")],
    ),
    (
        "port-level-with-empty-selector",
        "selector: {matchLabels: {}}\nportLevelMtls:\n  8080: {mode: DISABLE}",
        [(2, "spec.portLevelMtls", "requires a selector")],
    ),
    (
        "port-zero",
        "selector: {matchLabels: {a: b}}\nportLevelMtls:\n  0: {mode: DISABLE}",
        [(3, "spec.portLevelMtls.0", "port must be a number between 1 and 65535, got string '0'")],
    ),
    (
        "port-name",
        "selector: {matchLabels: {a: b}}\nportLevelMtls:\n  http: {mode: DISABLE}",
        [(3, "spec.portLevelMtls.http", "got string 'http'")],
    ),
    (
        "port-non-ascii-digits",  # str.isdigit() says yes to a superscript 2, int() does not: once a crash
        "selector: {matchLabels: {a: b}}\nportLevelMtls:\n  '\u00b2': {mode: DISABLE}",
        [(3, 'spec.portLevelMtls["\\u00b2"]', "port must be a number between 1 and 65535, got string")],
    ),
    (
        "port-mode-unknown",
        "selector: {matchLabels: {a: b}}\nportLevelMtls:\n  8080: {mode: NONE}",
        [(3, "spec.portLevelMtls.8080.mode", "expected one of UNSET, DISABLE, PERMISSIVE, STRICT")],
    ),
    (
        "port-entry-not-mapping",
        "selector: {matchLabels: {a: b}}\nportLevelMtls:\n  8080: STRICT",
        [(3, "spec.portLevelMtls.8080", "expected a mapping, got string 'STRICT'")],
    ),
    (
        "port-entry-null",
        "selector: {matchLabels: {a: b}}\nportLevelMtls:\n  8080:",
        [(3, "spec.portLevelMtls.8080", "got null")],
    ),
    (
        "port-level-not-mapping",
        "selector: {matchLabels: {a: b}}\nportLevelMtls: [8080]",
        [(2, "spec.portLevelMtls", "expected a mapping of port number to mtls settings, got a list")],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in REJECTIONS], ids=[c[0] for c in REJECTIONS])
def test_rejected(security: SecurityDocs, body: str, expected: list[tuple[int, str, str]]) -> None:
    errors = security.errors(KIND, body)
    for line, path, message in expected:
        security.assert_error(errors, KIND, line, path, message)
    assert len(errors) == len(expected), errors


def test_every_problem_is_reported_at_once(security: SecurityDocs) -> None:
    body = textwrap.dedent(
        """\
        mtls: {mode: LOOSE}
        portLevelMtls:
          99999: {mode: STRICT}
        """
    )
    errors = security.errors(KIND, body)
    security.assert_error(errors, KIND, 1, "spec.mtls.mode", "invalid value 'LOOSE'")
    security.assert_error(errors, KIND, 3, "spec.portLevelMtls.99999", "between 1 and 65535")
    assert len(errors) == 2, errors  # no selector is needed for a port map that had no valid entry


def test_content_hash_follows_the_spec(security: SecurityDocs) -> None:
    strict, also_strict = accepted(security, "mtls: {mode: STRICT}"), accepted(security, "mtls:\n  mode: STRICT")
    permissive = accepted(security, "mtls: {mode: PERMISSIVE}")
    assert strict.meta.content_hash == also_strict.meta.content_hash != permissive.meta.content_hash
