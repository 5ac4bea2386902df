"""Mixer policies' CEL expressions checked against the attribute vocabulary at validation
(pilot/config/expressions.py): a name outside it would only ever be absent at a check, so it is a config error."""

from __future__ import annotations

import pytest

from pilot.config.expressions import ExpressionError, attribute_names, compile_expression
from tests.conftest import ApiGroupDocs


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ('request.headers["x-user"] == request["headers"][k]', ["request.headers.x-user", "request.headers"]),
        ("has(request.headers.x_user)", ["request.headers.x_user"]),
        ('request.path.startsWith("/a") && source . labels . app == "b"', ["request.path", "source.labels.app"]),
        ('"request.pth" == request.path', ["request.path"]),
        ("r'''source.x''' + b\"destination.y\" == request.id", ["request.id"]),
        ('request.path // request.pth\n == "/"', ["request.path"]),
        ('request.headers.exists(name, name == "x")', ["request.headers"]),
        ("{'a': request}.a.path", ["request"]),
        ("response.code == 200", ["response.code"]),
    ],
    ids=[
        "string-index-selects-another-index-ends",
        "field-select-into-a-map",
        "method-call-ends-the-name-spaces-allowed",
        "not-inside-a-string",
        "not-inside-raw-or-bytes-strings",
        "not-inside-a-comment",
        "macro-ends-the-name",
        "member-of-another-value",
        "istio-only-root",
    ],
)
def test_attribute_names(source: str, names: list[str]) -> None:
    assert list(attribute_names(source)) == names


@pytest.mark.parametrize(
    "source",
    [
        'request.headers["x-user"]',
        "has(request.headers.x_user)",
        'source.labels.app == "reviews"',
        'destination.labels["version"]',
        "source.workload",
        'source.workload.name + "/" + destination.service.host',
        'request.path.startsWith("/api/") && connection.mtls',
        '"request.pth" == request.path',
        "[1, 2].map(source, source * 2)",
    ],
    ids=[
        "header",
        "header-by-field-select",
        "label-by-field-select",
        "label",
        "group-of-attributes",
        "values",
        "method-on-a-value",
        "name-in-a-string",
        "comprehension-variable-named-like-a-root",
    ],
)
def test_expressions_in_the_vocabulary_compile(source: str) -> None:
    compile_expression(source)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "request.pth",
            "unknown attribute 'request.pth' in CEL expression 'request.pth': request has headers, "
            "host, id, method, path, protocol, scheme, useragent",
        ),
        (
            'source.workload.nme == "a"',
            "unknown attribute 'source.workload.nme' in CEL expression "
            "'source.workload.nme == \"a\"': source.workload has name, namespace",
        ),
        (
            "source.ip.x",
            "unknown attribute 'source.ip.x' in CEL expression 'source.ip.x': source.ip is a value, "
            "it has no attributes",
        ),
        (
            "src.ip",
            "unknown attribute 'src' in CEL expression 'src.ip': attributes start with source., destination., "
            "request., connection.",
        ),
        (
            "request.auth.principal",
            "attribute 'request.auth.principal' in CEL expression 'request.auth.principal': "
            "not supported by meshplane yet",
        ),
        (
            'request.auth.claims["groups"]',
            "attribute 'request.auth.claims' in CEL expression "
            "'request.auth.claims[\"groups\"]': not supported by meshplane yet",
        ),
        (
            'request["pth"] == "/"',
            "unknown attribute 'request.pth' in CEL expression 'request[\"pth\"] == \"/\"': request has headers, "
            "host, id, method, path, protocol, scheme, useragent",
        ),
        (
            "response.code == 200",
            "attribute 'response.code' in CEL expression 'response.code == 200': not supported by meshplane yet",
        ),
        ("source.uid", "attribute 'source.uid' in CEL expression 'source.uid': not supported by meshplane yet"),
        (
            "connection.sent.bytes > 0",
            "attribute 'connection.sent.bytes' in CEL expression 'connection.sent.bytes "
            "> 0': not supported by meshplane yet",
        ),
    ],
    ids=[
        "typo-in-a-value",
        "typo-in-a-group",
        "field-of-a-value",
        "unknown-root",
        "istio-request-auth",
        "istio-request-auth-claims",
        "typo-by-string-index",
        "istio-response",
        "istio-source-uid",
        "istio-connection-bytes",
    ],
)
def test_names_outside_the_vocabulary_are_rejected(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as raised:
        compile_expression(source)
    assert str(raised.value) == message


def test_unknown_attribute_is_a_config_error_at_its_field(mixer_docs: ApiGroupDocs) -> None:
    errors = mixer_docs.errors("RateLimit", "limit: {requests: 1, per: 1s}\nkey: request.headers.x\nmatch: request.pth")
    assert errors == [
        "test.yaml:9: RateLimit ns/r: spec.match: unknown attribute 'request.pth' in CEL expression 'request.pth': "
        "request has headers, host, id, method, path, protocol, scheme, useragent"
    ]
