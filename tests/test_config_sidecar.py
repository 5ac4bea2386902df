"""Sidecar: Istio's validation (``ValidateSidecar``), every problem reported with its line and field path, and the
fields meshplane does not translate rejected as not supported."""

from __future__ import annotations

import pytest

from pilot.config.parse import API_VERSIONS, parse_config_text
from pilot.config.types import Protocol, Sidecar, SidecarEgressListener, SidecarHost, SidecarPort
from pilot.config.validate_sidecar import parse_sidecar_host
from tests.conftest import IstioDocs, assert_rejected_with

KIND = "Sidecar"


def accepted(istio: IstioDocs, body: str) -> Sidecar:
    resource = istio.accepted(KIND, body)
    assert isinstance(resource, Sidecar)
    return resource


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_every_networking_api_version_is_read(api_version: str) -> None:
    text = (
        f"apiVersion: {api_version}\nkind: Sidecar\nmetadata: {{name: default}}\nspec:\n  egress:\n  - hosts: ['./*']\n"
    )
    (resource,) = parse_config_text(text, "sc.yaml").resources
    assert isinstance(resource, Sidecar)


def test_istio_namespace_isolation_example_is_read_field_by_field(istio: IstioDocs) -> None:
    sidecar = accepted(
        istio,
        """
        workloadSelector:
          labels: {app: ratings}
        egress:
        - port: {number: 9080, protocol: HTTP, name: egresshttp}
          hosts: ["prod-us1/*"]
        - hosts: ["./*", "istio-system/*", "*/*.example.com", "~/*"]
        outboundTrafficPolicy: {mode: REGISTRY_ONLY}
        """,
    )
    assert sidecar.workload_selector == {"app": "ratings"}
    assert sidecar.egress == (
        SidecarEgressListener(
            port=SidecarPort(number=9080, protocol=Protocol.HTTP, name="egresshttp"),
            hosts=(SidecarHost(namespace="prod-us1", host="*"),),
        ),
        SidecarEgressListener(
            hosts=(
                SidecarHost(namespace=".", host="*"),
                SidecarHost(namespace="istio-system", host="*"),
                SidecarHost(namespace="*", host="*.example.com"),
                SidecarHost(namespace="~", host="*"),
            )
        ),
    )
    assert sidecar.outbound_traffic_policy == "REGISTRY_ONLY"
    assert sidecar.ingress == ()


@pytest.mark.parametrize(
    ("body", "selector", "policy"),
    [
        ("outboundTrafficPolicy: {}", None, "ALLOW_ANY"),  # Istio's enum default
        ("workloadSelector: {}\noutboundTrafficPolicy: {mode: ALLOW_ANY}", None, "ALLOW_ANY"),
        ("workloadSelector: {labels: {}}\negress: [{hosts: ['*/*']}]", None, None),
        ("egress: [{hosts: ['*/*'], captureMode: IPTABLES}]", None, None),
    ],
    ids=["empty-policy-is-allow-any", "empty-selector-is-namespace-wide", "no-labels", "capture-iptables"],
)
def test_accepted_defaults(istio: IstioDocs, body: str, selector: object, policy: str | None) -> None:
    sidecar = accepted(istio, body)
    assert sidecar.workload_selector == selector
    assert sidecar.outbound_traffic_policy == policy


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("./*", None),
        ("*/*", None),
        ("~/*", None),
        ("istio-system/*", None),
        ("ns/reviews.ns.svc.cluster.local", None),
        ("ns/*.example.com", None),
        ("*", "must be of the form <namespace>/<dnsName>"),
        ("reviews.ns.svc.cluster.local", "must be of the form"),
        ("/x.com", "must be of the form"),
        ("ns/", "must be of the form"),
        ("Bad_NS/*", "invalid namespace 'Bad_NS'"),
        ("ns/a.*.com", "a wildcard must be the whole first label"),
        ("ns/UPPER.com", "is not a valid DNS label"),
    ],
    ids=lambda v: str(v),
)
def test_egress_host_forms(value: str, problem: str | None) -> None:
    host, error = parse_sidecar_host(value)
    if problem is None:
        assert host is not None and error is None
        assert f"{host.namespace}/{host.host}" == value
    else:
        assert host is None and error is not None and problem in error


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{}", [(0, "spec", "sidecar: empty configuration provided")]),
        (
            "egress:\n- hosts: ['./*']\n- hosts: ['*/*']",
            [
                (2, "spec.egress[0]", "the egress listener with empty port should be the last listener in the list"),
                (3, "spec.egress[1]", "egress can have only one listener with empty port"),
            ],
        ),
        (
            "egress:\n- hosts: ['./*']\n- port: {number: 80, protocol: HTTP}\n  hosts: ['*/*']",
            [(2, "spec.egress[0]", "the egress listener with empty port should be the last listener in the list")],
        ),
        (
            "egress:\n- port: {number: 80, protocol: HTTP}\n  hosts: ['*/*']\n"
            "- port: {number: 80, protocol: TCP}\n  hosts: ['./*']",
            [(4, "spec.egress[1].port", "ports on IP bound listeners must be unique")],
        ),
        ("egress:\n- hosts: []", [(2, "spec.egress[0].hosts", "egress listener must contain at least one host")]),
        ("egress:\n- port: {number: 80, protocol: HTTP}", [(2, "spec.egress[0].hosts", "at least one host")]),
        (
            "egress:\n- port: {number: 0, protocol: HTTP}\n  hosts: ['*/*']",
            [(2, "spec.egress[0].port.number", "must be between 1 and 65535")],
        ),
        (
            "egress:\n- port: {number: 80}\n  hosts: ['*/*']",
            [(2, "spec.egress[0].port.protocol", "required field is missing")],
        ),
        (
            "egress:\n- port: {number: 80, protocol: QUIC}\n  hosts: ['*/*']",
            [(2, "spec.egress[0].port.protocol", "invalid value 'QUIC'")],
        ),
        (
            "egress:\n- port: {number: 80, protocol: HTTP, name: Web_1}\n  hosts: ['*/*']",
            [(2, "spec.egress[0].port.name", "invalid port name")],
        ),
        (
            "egress:\n- port: {number: 80, protocol: HTTP, targetPort: 8080}\n  hosts: ['*/*']",
            [(2, "spec.egress[0].port.targetPort", "targetPort has no impact on Sidecars")],
        ),
        (
            "egress:\n- hosts: ['./*', 'bad', 'Bad/*']",
            [
                (2, "spec.egress[0].hosts[1]", "must be of the form <namespace>/<dnsName>"),
                (2, "spec.egress[0].hosts[2]", "invalid namespace"),
            ],
        ),
        (
            "workloadSelector:\n  labels: {app: '*'}\negress: [{hosts: ['*/*']}]",
            [(2, "spec.workloadSelector.labels.app", "")],
        ),
        ("outboundTrafficPolicy: {mode: DENY}", [(1, "spec.outboundTrafficPolicy.mode", "invalid value 'DENY'")]),
    ],
    ids=[
        "empty",
        "two-catch-all",
        "catch-all-not-last",
        "duplicate-port",
        "empty-hosts",
        "no-hosts",
        "port-zero",
        "protocol-required",
        "unknown-protocol",
        "bad-port-name",
        "target-port",
        "bad-hosts-all-reported",
        "wildcard-selector",
        "bad-mode",
    ],
)
def test_invalid(istio: IstioDocs, body: str, expected: list[tuple[int, str, str]]) -> None:
    assert_rejected_with(istio, KIND, body, expected)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "egress:\n- hosts: ['*/*']\n  bind: 127.0.0.1\n  captureMode: NONE",
            [
                (3, "spec.egress[0].bind", "not supported by meshplane yet"),
                (4, "spec.egress[0].captureMode", "NONE not supported by meshplane yet"),
            ],
        ),
        (
            "ingress:\n- port: {number: 9080, protocol: HTTP}\n  defaultEndpoint: 127.0.0.1:8080\n"
            "inboundConnectionPool: {tcp: {maxConnections: 5}}\n"
            "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n  egressProxy: {host: egress.example.com}",
            [
                (1, "spec.ingress", "not supported by meshplane yet"),
                (4, "spec.inboundConnectionPool", "not supported by meshplane yet"),
                (7, "spec.outboundTrafficPolicy.egressProxy", "not supported by meshplane yet"),
            ],
        ),
    ],
    ids=["egress-bind-capture-none", "ingress-pool-egress-proxy-all-at-once"],
)
def test_not_supported_fields_are_rejected_all_at_once(
    istio: IstioDocs, body: str, expected: list[tuple[int, str, str]]
) -> None:
    assert_rejected_with(istio, KIND, body, expected)


def test_a_misspelt_field_is_unknown(istio: IstioDocs) -> None:
    errors = istio.errors(KIND, "egres: [{hosts: ['*/*']}]\noutboundTrafficPolicy: {mode: ALLOW_ANY}")
    istio.assert_error(errors, KIND, 1, "spec.egres", "unknown field 'egres'")
