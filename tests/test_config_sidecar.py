"""Sidecar: Istio's validation (``ValidateSidecar``), every problem reported with its line and field path, and the
fields meshplane does not translate rejected as not supported."""

from __future__ import annotations

import pytest

from pilot.config.parse import API_VERSIONS, parse_config_text
from pilot.config.types import (
    ConnectionPool,
    Destination,
    Protocol,
    ServerTLSSettings,
    Sidecar,
    SidecarEgressListener,
    SidecarHost,
    SidecarIngressListener,
    SidecarPort,
)
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
            "ingress:\n- port: {number: 9080, protocol: HTTP}\n  bind: 10.0.0.1\n  captureMode: NONE",
            [
                (3, "spec.ingress[0].bind", "not supported by meshplane yet: ingress listeners are reached through"),
                (4, "spec.ingress[0].captureMode", "NONE not supported by meshplane yet"),
            ],
        ),
    ],
    ids=["egress-bind-capture-none", "ingress-bind-capture-all-at-once"],
)
def test_not_supported_fields_are_rejected_all_at_once(
    istio: IstioDocs, body: str, expected: list[tuple[int, str, str]]
) -> None:
    assert_rejected_with(istio, KIND, body, expected)


def test_a_misspelt_field_is_unknown(istio: IstioDocs) -> None:
    errors = istio.errors(KIND, "egres: [{hosts: ['*/*']}]\noutboundTrafficPolicy: {mode: ALLOW_ANY}")
    istio.assert_error(errors, KIND, 1, "spec.egres", "unknown field 'egres'")


def test_istio_ingress_example_is_read_field_by_field(istio: IstioDocs) -> None:
    sidecar = accepted(
        istio,
        """
        inboundConnectionPool:
          tcp: {maxConnections: 5}
        ingress:
        - port: {number: 9080, protocol: HTTP, name: somename}
          defaultEndpoint: unix:///var/run/someuds.sock
        - port: {number: 9081, protocol: TCP}
          defaultEndpoint: 0.0.0.0:8081
          captureMode: IPTABLES
          connectionPool:
            http: {http1MaxPendingRequests: 2}
        - port: {number: 9082, protocol: GRPC}
          defaultEndpoint: 127.0.0.1:8082
        - port: {number: 9083, protocol: HTTP}
          defaultEndpoint: unix://@abstract
        - port: {number: 9084, protocol: HTTP}
        """,
    )
    assert sidecar.inbound_connection_pool == ConnectionPool(max_connections=5)
    assert sidecar.ingress == (
        SidecarIngressListener(
            port=SidecarPort(number=9080, protocol=Protocol.HTTP, name="somename"),
            default_socket="/var/run/someuds.sock",
        ),
        SidecarIngressListener(
            port=SidecarPort(number=9081, protocol=Protocol.TCP),
            default_endpoint=("0.0.0.0", 8081),
            connection_pool=ConnectionPool(http1_max_pending_requests=2),
        ),
        SidecarIngressListener(
            port=SidecarPort(number=9082, protocol=Protocol.GRPC), default_endpoint=("127.0.0.1", 8082)
        ),
        SidecarIngressListener(port=SidecarPort(number=9083, protocol=Protocol.HTTP), default_socket="@abstract"),
        SidecarIngressListener(port=SidecarPort(number=9084, protocol=Protocol.HTTP)),
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("ingress:\n- defaultEndpoint: 127.0.0.1:80", [(2, "spec.ingress[0].port", "port is required")]),
        (
            "ingress:\n- port: {number: 80, protocol: HTTP}\n- port: {number: 80, protocol: TCP}",
            [(3, "spec.ingress[1].port", "ports on IP bound listeners must be unique")],
        ),
        (
            "ingress:\n- port: {number: 80, protocol: HTTP}\n  defaultEndpoint: 10.0.0.1:8080",
            [(3, "spec.ingress[0].defaultEndpoint", "defaultEndpoint must be of form 127.0.0.1:<port>")],
        ),
        (
            "ingress:\n- port: {number: 80, protocol: HTTP}\n  defaultEndpoint: 127.0.0.1",
            [(3, "spec.ingress[0].defaultEndpoint", "defaultEndpoint must be of form")],
        ),
        (
            "ingress:\n- port: {number: 80, protocol: HTTP}\n  defaultEndpoint: 127.0.0.1:http",
            [(3, "spec.ingress[0].defaultEndpoint", "defaultEndpoint port (http) is not a number")],
        ),
        (
            "ingress:\n- port: {number: 80, protocol: HTTP}\n  defaultEndpoint: 0.0.0.0:70000",
            [(3, "spec.ingress[0].defaultEndpoint", "port number 70000 must be in the range")],
        ),
        (
            "ingress:\n- port: {number: 80, protocol: HTTP}\n  defaultEndpoint: unix://relative.sock",
            [(3, "spec.ingress[0].defaultEndpoint", "'relative.sock' is not an absolute path to a file")],
        ),
        (
            "ingress:\n- port: {number: 80, protocol: HTTP}\n  defaultEndpoint: unix://",
            [(3, "spec.ingress[0].defaultEndpoint", "unix address must not be empty")],
        ),
        (
            "ingress:\n- port: {number: 80, protocol: HTTP}\n  defaultEndpoint: '[::1]:8080'",
            [(3, "spec.ingress[0].defaultEndpoint", "not supported by meshplane yet: pods have IPv4 addresses only")],
        ),
        (
            "ingress:\n- port: {number: 0, protocol: HTTP, targetPort: 80}",
            [
                (2, "spec.ingress[0].port.number", "1"),
                (2, "spec.ingress[0].port.targetPort", "targetPort has no impact on Sidecars"),
            ],
        ),
        (
            "ingress:\n- port: {number: 80}\n  connectionPool: {tcp: {maxConnections: -1}}",
            [
                (2, "spec.ingress[0].port.protocol", "required field is missing"),
                (3, "spec.ingress[0].connectionPool.tcp.maxConnections", ""),
            ],
        ),
        ("inboundConnectionPool: {}", [(1, "spec.inboundConnectionPool", "a connection pool must set tcp or http")]),
    ],
    ids=[
        "port-required",
        "unique-ports",
        "endpoint-host",
        "endpoint-without-port",
        "endpoint-port-not-a-number",
        "endpoint-port-range",
        "unix-relative",
        "unix-empty",
        "ipv6-not-yet",
        "port-number-and-target-port",
        "protocol-and-pool",
        "empty-inbound-pool",
    ],
)
def test_ingress_problems(istio: IstioDocs, body: str, expected: list[tuple[int, str, str]]) -> None:
    assert_rejected_with(istio, KIND, body, expected)


def test_ingress_tls_is_read_as_a_gateway_servers(istio: IstioDocs) -> None:
    sidecar = accepted(
        istio,
        """
        ingress:
        - port: {number: 9443, protocol: HTTPS}
          defaultEndpoint: 127.0.0.1:8443
          tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}
        """,
    )
    [listener] = sidecar.ingress
    assert listener.tls == ServerTLSSettings(
        mode="MUTUAL", server_certificate="/c.pem", private_key="/k.pem", ca_certificates="/ca.pem"
    )


_FILES = "serverCertificate: /c.pem, privateKey: /k.pem"


@pytest.mark.parametrize(
    ("tls", "protocol", "problem"),
    [
        (f"{{mode: SIMPLE, {_FILES}}}", "HTTP", "server cannot have TLS settings for non HTTPS/TLS ports"),
        (f"{{mode: SIMPLE, {_FILES}, subjectAltNames: [a]}}", "HTTPS", "subjectAltNames is not supported in ingress"),
        (f"{{mode: SIMPLE, {_FILES}, httpsRedirect: true}}", "HTTPS", "sidecar: httpsRedirect is not supported"),
        ("{mode: SIMPLE, credentialName: c}", "HTTPS", "sidecar: credentialName is not currently supported"),
        ("{mode: ISTIO_MUTUAL}", "TLS", "cannot set mode to ISTIO_MUTUAL in sidecar ingress tls"),
        ("{mode: PASSTHROUGH}", "TLS", "PASSTHROUGH not supported by meshplane yet"),
        (f"{{mode: OPTIONAL_MUTUAL, {_FILES}, caCertificates: /ca.pem}}", "TLS", "OPTIONAL_MUTUAL not supported"),
        ("{mode: SIMPLE}", "TLS", "SIMPLE TLS requires a server certificate"),
    ],
    ids=[
        "http-port",
        "subject-alt-names",
        "https-redirect",
        "credential-name",
        "istio-mutual",
        "passthrough",
        "optional-mutual",
        "simple-without-files",
    ],
)
def test_ingress_tls_problems(istio: IstioDocs, tls: str, protocol: str, problem: str) -> None:
    body = f"ingress:\n- port: {{number: 9443, protocol: {protocol}}}\n  tls: {tls}"
    errors = istio.errors(KIND, body)
    assert any(problem in str(e) for e in errors), [str(e) for e in errors]


def test_egress_proxy_is_read(istio: IstioDocs) -> None:
    sidecar = accepted(
        istio,
        """
        outboundTrafficPolicy:
          mode: ALLOW_ANY
          egressProxy: {host: egress.istio-system.svc.cluster.local, subset: v1, port: {number: 80}}
        """,
    )
    assert sidecar.egress_proxy == Destination(host="egress.istio-system.svc.cluster.local", subset="v1", port=80)
    assert accepted(istio, "outboundTrafficPolicy: {egressProxy: {host: egress, port: {number: 80}}}").egress_proxy


@pytest.mark.parametrize(
    ("policy", "path", "problem"),
    [
        (
            "{mode: REGISTRY_ONLY, egressProxy: {host: egress, port: {number: 80}}}",
            "spec.outboundTrafficPolicy.egressProxy",
            "egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
        ),
        (
            "{egressProxy: {host: egress}}",
            "spec.outboundTrafficPolicy.egressProxy",
            "egress_proxy port must be non-nil",
        ),
        (
            "{egressProxy: {host: '*.example.com', port: {number: 80}}}",
            "spec.outboundTrafficPolicy.egressProxy.host",
            "wildcard",
        ),
        (
            "{egressProxy: {port: {number: 80}}}",
            "spec.outboundTrafficPolicy.egressProxy.host",
            "required",
        ),
        (
            "{egressProxy: {host: egress, subset: Bad_Subset, port: {number: 80}}}",
            "spec.outboundTrafficPolicy.egressProxy.subset",
            "subset name",
        ),
    ],
    ids=["registry-only", "no-port", "wildcard-host", "no-host", "bad-subset"],
)
def test_egress_proxy_problems(istio: IstioDocs, policy: str, path: str, problem: str) -> None:
    errors = [str(e) for e in istio.errors(KIND, f"outboundTrafficPolicy: {policy}")]
    assert any(path in e and problem in e for e in errors), errors
