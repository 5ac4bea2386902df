"""MeshConfig ``extensionProviders``: the ext_authz types read field by field, every problem at its file:line."""

from __future__ import annotations

import pytest

from pilot.config.mesh_config import MeshConfigError, parse_mesh_config
from pilot.config.mesh_extension_providers import (
    ExtAuthzGrpcProvider,
    ExtAuthzHttpProvider,
    ExtAuthzRequestBody,
    ExtensionProvider,
)

ISTIO_DOCS = """\
# Add the following content to define the external authorizers.
extensionProviders:
- name: "sample-ext-authz-grpc"
  envoyExtAuthzGrpc:
    service: "ext-authz.foo.svc.cluster.local"
    port: "9000"
- name: "sample-ext-authz-http"
  envoyExtAuthzHttp:
    service: "ext-authz.foo.svc.cluster.local"
    port: "8000"
    includeRequestHeadersInCheck: ["x-ext-authz"]
"""

HOST = "ext-authz.foo.svc.cluster.local"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            ISTIO_DOCS,
            (
                ExtAuthzGrpcProvider(name="sample-ext-authz-grpc", service=HOST, port=9000),
                ExtAuthzHttpProvider(
                    name="sample-ext-authz-http", service=HOST, port=8000, request_headers=("x-ext-authz",)
                ),
            ),
        ),
        (
            f"""extensionProviders:
- name: oauth2-proxy
  envoyExtAuthzHttp:
    service: foo/oauth2-proxy.foo.svc.cluster.local
    port: 4180
    timeout: 2s
    pathPrefix: /check
    failOpen: true
    statusOnError: "503"
    includeRequestHeadersInCheck: ["authorization", "x-*"]
    includeAdditionalHeadersInCheck: {{x-b: "2", x-a: "1"}}
    includeRequestBodyInCheck: {{maxRequestBytes: 100, allowPartialMessage: true, packAsBytes: true}}
    headersToUpstreamOnAllow: ["authorization", "x-auth-request-user"]
    headersToDownstreamOnDeny: ["content-type", "set-cookie"]
    headersToDownstreamOnAllow: ["set-cookie"]
- name: grpc
  envoyExtAuthzGrpc:
    service: {HOST}
    port: 9000
    timeout: 250ms
    failOpen: true
    statusOnError: "500"
    includeRequestBodyInCheck: {{maxRequestBytes: 10}}
""",
            (
                ExtAuthzHttpProvider(
                    name="oauth2-proxy",
                    service="foo/oauth2-proxy.foo.svc.cluster.local",
                    port=4180,
                    timeout=2.0,
                    path_prefix="/check",
                    fail_open=True,
                    status_on_error=503,
                    request_headers=("authorization", "x-*"),
                    additional_headers=(("x-a", "1"), ("x-b", "2")),
                    request_body=ExtAuthzRequestBody(
                        max_request_bytes=100, allow_partial_message=True, pack_as_bytes=True
                    ),
                    headers_to_upstream_on_allow=("authorization", "x-auth-request-user"),
                    headers_to_downstream_on_deny=("content-type", "set-cookie"),
                    headers_to_downstream_on_allow=("set-cookie",),
                ),
                ExtAuthzGrpcProvider(
                    name="grpc",
                    service=HOST,
                    port=9000,
                    timeout=0.25,
                    fail_open=True,
                    status_on_error=500,
                    request_body=ExtAuthzRequestBody(max_request_bytes=10),
                ),
            ),
        ),
        (
            f"extensionProviders:\n- name: old\n  envoyExtAuthzHttp:\n    service: {HOST}\n    port: 8000\n"
            "    includeHeadersInCheck: [x-old]\n",
            (ExtAuthzHttpProvider(name="old", service=HOST, port=8000, request_headers=("x-old",)),),
        ),
        ("extensionProviders: []\n", ()),
    ],
    ids=["istio-docs", "every-field", "deprecated-include-headers-in-check", "empty"],
)
def test_accepted(text: str, expected: tuple[ExtensionProvider, ...]) -> None:
    assert parse_mesh_config(text, "mesh.yaml").settings.extension_providers == expected


def test_providers_are_looked_up_by_name() -> None:
    settings = parse_mesh_config(ISTIO_DOCS, "mesh.yaml").settings
    assert isinstance(settings.extension_provider("sample-ext-authz-http"), ExtAuthzHttpProvider)
    assert settings.extension_provider("nope") is None


P = "extensionProviders[0]"
H = f"{P}.envoyExtAuthzHttp"


def http(fields: str) -> str:
    return f"extensionProviders:\n- name: p\n  envoyExtAuthzHttp:\n{fields}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (http("    port: 80\n"), [f"mesh.yaml:3: {H}.service: required field is missing"]),
        (http(f"    service: {HOST}\n"), [f"mesh.yaml:3: {H}.port: required field is missing"]),
        (
            http(f"    service: {HOST}\n    port: 0\n"),
            [f"mesh.yaml:5: {H}.port: port must be in the range [1, 65535], found: 0"],
        ),
        (
            http("    service: a/b/c.d\n    port: 80\n"),
            [f"mesh.yaml:4: {H}.service: invalid service 'a/b/c.d': expected <host> or <namespace>/<host>"],
        ),
        (http("    service: Foo_/x.y\n    port: 80\n"), [f"mesh.yaml:4: {H}.service: invalid namespace 'Foo_'"]),
        (http("    service: '*.foo'\n    port: 80\n"), [f"mesh.yaml:4: {H}.service: invalid host '*.foo'"]),
        (
            http(f"    service: {HOST}\n    port: 80\n    pathPrefix: check\n"),
            [f"mesh.yaml:6: {H}.pathPrefix: pathPrefix must begin with `/`, found: 'check'"],
        ),
        (
            http(f"    service: {HOST}\n    port: 80\n    statusOnError: '299'\n"),
            [f"mesh.yaml:6: {H}.statusOnError: unsupported statusOnError '299'"],
        ),
        (
            http(f"    service: {HOST}\n    port: 80\n    timeout: 5\n"),
            [f"mesh.yaml:6: {H}.timeout: expected a duration string"],
        ),
        (
            http(f"    service: {HOST}\n    port: 80\n    headersToUpstreamOnAllow: ['*']\n"),
            [f"mesh.yaml:6: {H}.headersToUpstreamOnAllow[0]: invalid header '*'"],
        ),
        (
            http(f"    service: {HOST}\n    port: 80\n    includeRequestBodyInCheck: {{maxBytes: 1}}\n"),
            [f"mesh.yaml:6: {H}.includeRequestBodyInCheck.maxBytes: unknown field"],
        ),
        (
            http(f"    service: {HOST}\n    port: 80\n    pathPrefx: /x\n"),
            [f"mesh.yaml:6: {H}.pathPrefx: unknown field 'pathPrefx'"],
        ),
        (
            f"extensionProviders:\n- name: g\n  envoyExtAuthzGrpc:\n    service: {HOST}\n    port: 90\n"
            "    pathPrefix: /x\n",
            [f"mesh.yaml:6: {P}.envoyExtAuthzGrpc.pathPrefix: unknown field 'pathPrefix'"],
        ),
        (
            "extensionProviders:\n- envoyExtAuthzGrpc: {service: a.b, port: 1}\n",
            [f"mesh.yaml:2: {P}.name: required field is missing"],
        ),
        (
            "extensionProviders:\n- name: p\n",
            [f"mesh.yaml:2: {P}: one of envoyExtAuthzHttp, envoyExtAuthzGrpc"],
        ),
        (
            "extensionProviders:\n- name: p\n  envoyExtAuthzGrpc: {service: a.b, port: 1}\n"
            "  envoyExtAuthzHttp: {service: a.b, port: 1}\n",
            [f"mesh.yaml:2: {P}: only one of"],
        ),
        (
            "extensionProviders:\n- name: p\n  envoyExtAuthzGrpc: {service: a.b, port: 1}\n"
            "- name: p\n  envoyExtAuthzHttp: {service: a.b, port: 1}\n",
            ["mesh.yaml:4: extensionProviders[1].name: extension provider name must be unique, found duplicate: 'p'"],
        ),
        (
            "extensionProviders:\n- name: sky\n  skywalking: {service: z.b, port: 11800}\n",
            [f"mesh.yaml:3: {P}.skywalking: not supported by meshplane yet"],
        ),
    ],
    ids=[
        "no-service",
        "no-port",
        "port-out-of-range",
        "service-too-many-slashes",
        "service-bad-namespace",
        "service-wildcard-host",
        "path-prefix-without-slash",
        "status-not-envoys",
        "timeout-not-a-duration",
        "header-only-a-star",
        "body-unknown-field",
        "http-typo",
        "grpc-has-no-path-prefix",
        "no-name",
        "no-type",
        "two-types",
        "duplicate-name",
        "type-not-read-yet",
    ],
)
def test_rejected(text: str, expected: list[str]) -> None:
    with pytest.raises(MeshConfigError) as raised:
        parse_mesh_config(text, "mesh.yaml")
    messages = [str(error) for error in raised.value.errors]
    assert len(messages) == len(expected), messages
    for message, start in zip(messages, expected, strict=True):
        assert message.startswith(start), messages


def test_every_problem_is_reported_at_once() -> None:
    text = http("    service: a/b/c\n    port: nope\n    pathPrefix: x\n    statusOnError: '1'\n")
    with pytest.raises(MeshConfigError) as raised:
        parse_mesh_config(text, "mesh.yaml")
    assert [error.path for error in raised.value.errors] == [
        f"{H}.service",
        f"{H}.port",
        f"{H}.pathPrefix",
        f"{H}.statusOnError",
    ]
