"""VirtualService ``tcp`` and ``tls`` routes: Istio's rules (``pkg/config/validation``: ``validateTCPRoute``,
``validateTCPMatch``, ``validateTLSRoute``, ``validateTLSMatch``, ``validateSniHost``, ``validateRouteDestinations``),
one case per rule, each asserting file:line, field path and message; and the dataclasses they become."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pilot.config.types import Destination, L4MatchAttributes, RouteDestination, TLSMatchAttributes, VirtualService

if TYPE_CHECKING:
    from tests.conftest import IstioDocs

Expected = list[tuple[int, str, str]]  # (line in the spec body, field path, part of the message)

TCP = "hosts: [db]\ntcp:\n- route:\n  - destination: {host: db}\n"  # lines 1-4; a match at line 5 follows
TCP_MATCH = TCP + "  match:\n  - "  # the match's fields go on line 6
TLS = "hosts: [db, '*.example.com']\ntls:\n- route:\n  - destination: {host: db}\n  match:\n  - "  # match on line 6

CASES: list[tuple[str, str, Expected]] = [
    # validateTCPRoute
    (
        "tcp-no-route",
        "hosts: [db]\ntcp:\n- match: [{port: 5432}]\n",
        [(3, "spec.tcp[0].route", "TCP route is required")],
    ),
    ("tcp-not-a-list", "hosts: [db]\ntcp: {route: []}\n", [(2, "spec.tcp", "expected a list")]),
    (
        "tcp-unknown-field",
        TCP + "  name: r1\n",
        [(5, "spec.tcp[0].name", "unknown field 'name'")],
    ),
    (
        "tcp-weights-not-100",
        "hosts: [db]\ntcp:\n- route:\n  - {destination: {host: db, subset: v1}, weight: 80}\n"
        "  - {destination: {host: db, subset: v2}, weight: 30}\n",
        [(3, "spec.tcp[0].route", "the weights of 2 destinations must add up to 100, got 110")],
    ),
    (
        "tcp-weight-range",
        "hosts: [db]\ntcp:\n- route:\n  - {destination: {host: db}, weight: 101}\n",
        [(4, "spec.tcp[0].route[0].weight", "must be between 0 and 100")],
    ),
    (
        "tcp-destination-missing",
        "hosts: [db]\ntcp:\n- route:\n  - weight: 100\n",
        [(4, "spec.tcp[0].route[0].destination", "required field is missing")],
    ),
    (
        "tcp-destination-wildcard",
        "hosts: [db]\ntcp:\n- route:\n  - destination: {host: '*.db'}\n",
        [(4, "spec.tcp[0].route[0].destination.host", "a wildcard is not allowed here")],
    ),
    (
        "tcp-destination-port-range",
        "hosts: [db]\ntcp:\n- route:\n  - destination: {host: db, port: {number: 0}}\n",
        [(4, "spec.tcp[0].route[0].destination.port.number", "must be between 1 and 65535")],
    ),
    (
        "tcp-destination-headers",
        "hosts: [db]\ntcp:\n- route:\n  - destination: {host: db}\n    headers: {}\n",
        [(5, "spec.tcp[0].route[0].headers", "unknown field 'headers'")],
    ),
    # validateTCPMatch
    (
        "tcp-subnet-invalid",
        TCP_MATCH + "destinationSubnets: [10.0.0.0/40]\n",
        [(6, "spec.tcp[0].match[0].destinationSubnets[0]", "'10.0.0.0/40' is not a valid CIDR block")],
    ),
    (
        "tcp-subnet-hostname",
        TCP_MATCH + "destinationSubnets: [db.example.com]\n",
        [(6, "spec.tcp[0].match[0].destinationSubnets[0]", "is not a valid IP address")],
    ),
    ("tcp-port-range", TCP_MATCH + "port: 70000\n", [(6, "spec.tcp[0].match[0].port", "between 1 and 65535")]),
    (
        "tcp-source-labels-invalid",
        TCP_MATCH + "sourceLabels: {'a b': x}\n",
        [(6, 'spec.tcp[0].match[0].sourceLabels["a b"]', "invalid label key 'a b'")],
    ),
    (
        "tcp-source-namespace-invalid",
        TCP_MATCH + "sourceNamespace: Bad_NS\n",
        [(6, "spec.tcp[0].match[0].sourceNamespace", "invalid sourceNamespace 'Bad_NS'")],
    ),
    (
        "tcp-match-gateway",
        TCP_MATCH + "gateways: [Bad/ingress]\n",
        [(6, "spec.tcp[0].match[0].gateways[0]", "invalid value for namespace: 'Bad'")],
    ),
    # validateTLSRoute, validateTLSMatch, validateSniHost
    (
        "tls-no-match",
        "hosts: [db]\ntls:\n- route:\n  - destination: {host: db}\n",
        [(3, "spec.tls[0].match", "TLS route must have at least one match condition")],
    ),
    (
        "tls-no-route",
        "hosts: [db]\ntls:\n- match: [{sniHosts: [db]}]\n",
        [(3, "spec.tls[0].route", "TLS route is required")],
    ),
    (
        "tls-sni-missing",
        TLS + "port: 443\n",
        [(6, "spec.tls[0].match[0].sniHosts", "TLS match must have at least one SNI host")],
    ),
    (
        "tls-sni-empty",
        TLS + "sniHosts: []\n",
        [(6, "spec.tls[0].match[0].sniHosts", "TLS match must have at least one SNI host")],
    ),
    (
        "tls-sni-outside-hosts",
        TLS + "sniHosts: [db, other.com]\n",
        [
            (
                6,
                "spec.tls[0].match[0].sniHosts[1]",
                "SNI host 'other.com' is not a compatible subset of any of the virtual service hosts: "
                "[db, *.example.com]",
            )
        ],
    ),
    (
        "tls-sni-wider-than-host",
        TLS + "sniHosts: ['*.com']\n",
        [(6, "spec.tls[0].match[0].sniHosts[0]", "is not a compatible subset")],
    ),
    (
        "tls-sni-invalid",
        TLS + "sniHosts: [a.*.com]\n",
        [(6, "spec.tls[0].match[0].sniHosts[0]", "a wildcard must be the whole first label")],
    ),
    (
        "tls-subnet-invalid",
        TLS + "{sniHosts: [db], destinationSubnets: [300.0.0.1]}\n",
        [(6, "spec.tls[0].match[0].destinationSubnets[0]", "is not a valid IP address")],
    ),
    # validateVirtualService
    ("nothing-to-route", "hosts: [db]\n", [(0, "spec", "http, tcp or tls must be provided in virtual service")]),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tcp_and_tls_route_rejections(istio: IstioDocs, body: str, expected: Expected) -> None:
    errors = istio.errors("VirtualService", body)
    for line, path, message in expected:
        istio.assert_error(errors, "VirtualService", line, path, message)
    assert len(errors) == len(expected), errors


VALID = [
    ("tcp-no-match", TCP),
    ("tcp-match-mesh", TCP_MATCH + "gateways: [mesh]\n"),
    ("tcp-match-gateway", TCP_MATCH + "gateways: [istio-system/ingress]\n"),
    ("tls-sni-wildcard-within-wildcard", TLS + "sniHosts: ['*.a.example.com', b.example.com]\n"),
    ("tls-sni-ip", TLS + "sniHosts: [10.0.0.1]\n"),  # Istio: a warning only (most clients send no SNI for an IP)
    ("tls-sni-short-host-as-written", TLS + "sniHosts: [db]\n"),
    ("tcp-and-http", TCP + "http:\n- route:\n  - destination: {host: db}\n"),
]


@pytest.mark.parametrize("body", [c[1] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_tcp_and_tls_routes(istio: IstioDocs, body: str) -> None:
    assert isinstance(istio.accepted("VirtualService", body), VirtualService)


def test_tcp_and_tls_fields_are_converted(istio: IstioDocs) -> None:
    vs = istio.accepted(
        "VirtualService",
        """\
        hosts: [db, secure.example.com]
        tcp:
        - match:
          - {port: 5432, destinationSubnets: [10.0.0.0/8, 192.168.0.1], sourceLabels: {app: a}, sourceNamespace: ns}
          - {gateways: [mesh]}
          route:
          - {destination: {host: db, subset: v1, port: {number: 5432}}, weight: 70}
          - {destination: {host: db, subset: v2}, weight: 30}
        tls:
        - match: [{sniHosts: [secure.example.com], port: 443, sourceLabels: {app: b}}]
          route: [{destination: {host: secure.example.com}}]
        """,
    )
    assert isinstance(vs, VirtualService)
    [tcp] = vs.tcp
    first, second = tcp.match
    assert first == L4MatchAttributes(
        destination_subnets=("10.0.0.0/8", "192.168.0.1"),
        port=5432,
        source_labels=first.source_labels,
        source_namespace="ns",
    )
    assert dict(first.source_labels) == {"app": "a"}
    assert second == L4MatchAttributes(gateways=("mesh",))
    assert tcp.route == (
        RouteDestination(destination=Destination(host="db", subset="v1", port=5432), weight=70),
        RouteDestination(destination=Destination(host="db", subset="v2"), weight=30),
    )
    [tls] = vs.tls
    [match] = tls.match
    assert isinstance(match, TLSMatchAttributes)
    assert (match.sni_hosts, match.port, dict(match.source_labels)) == (("secure.example.com",), 443, {"app": "b"})
    assert tls.route == (RouteDestination(destination=Destination(host="secure.example.com")),)
    assert vs.http == ()
