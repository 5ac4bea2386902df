"""ServiceEntry and WorkloadEntry validation: one case per rule, each asserting file:line, path and message."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pilot.config.types import Protocol, Resolution, ServiceEntry, WorkloadEntry

if TYPE_CHECKING:
    from tests.conftest import IstioDocs

Expected = list[tuple[int, str, str]]  # (line in the spec body, field path, part of the message)

SERVICE_ENTRY_CASES: list[tuple[str, str, Expected]] = [
    ("hosts-missing", "ports: []\n", [(0, "spec.hosts", "required field is missing")]),  # line 0: `spec:`
    ("hosts-empty", "hosts: []\n", [(1, "spec.hosts", "must have at least one entry")]),
    ("hosts-not-a-list", "hosts: a.example.com\n", [(1, "spec.hosts", "expected a list of strings, got string")]),
    ("host-star", "hosts: ['*']\n", [(1, "spec.hosts[0]", "cannot stand for every host")]),
    ("host-short", "hosts: [reviews]\n", [(1, "spec.hosts[0]", "must be a fully qualified domain name")]),
    ("host-inner-wildcard", "hosts: [api.*.com]\n", [(1, "spec.hosts[0]", "whole first label")]),
    ("host-uppercase", "hosts: [API.example.com]\n", [(1, "spec.hosts[0]", "not a valid DNS label")]),
    ("host-numeric-tld", "hosts: [a.b.123]\n", [(1, "spec.hosts[0]", "cannot be all-numeric")]),
    ("host-duplicate", "hosts:\n- a.example.com\n- a.example.com\n", [(3, "spec.hosts[1]", "duplicate host")]),
    # Istio's ValidateServiceEntry: each address passes ValidateIPSubnet; CIDRs only with resolution NONE or STATIC
    (
        "address-invalid",
        "hosts: [a.example.com]\naddresses: [10.0.0.300]\n",
        [(2, "spec.addresses[0]", "'10.0.0.300' is not a valid IP address")],
    ),
    (
        "address-cidr-invalid",
        "hosts: [a.example.com]\naddresses:\n- 10.0.0.1\n- 10.0.0.0/33\n",
        [(4, "spec.addresses[1]", "'10.0.0.0/33' is not a valid CIDR block")],
    ),
    (
        "address-hostname",
        "hosts: [a.example.com]\naddresses: [db.example.com]\n",
        [(2, "spec.addresses[0]", "is not a valid IP address")],
    ),
    (
        "address-duplicate",
        "hosts: [a.example.com]\naddresses:\n- 10.0.0.1\n- 10.0.0.1\n",
        [(4, "spec.addresses[1]", "duplicate address '10.0.0.1'")],
    ),
    (
        "cidr-with-dns",
        "hosts: [a.example.com]\naddresses: [10.0.0.0/24]\nresolution: DNS\n",
        [(2, "spec.addresses", "CIDR addresses are allowed only for NONE/STATIC resolution types")],
    ),
    (
        "cidr-with-dns-round-robin",
        "hosts: [a.example.com]\naddresses: ['2001:db8::/64']\nresolution: DNS_ROUND_ROBIN\n",
        [(2, "spec.addresses", "CIDR addresses are allowed only for NONE/STATIC resolution types")],
    ),
    (
        "port-number-range",
        "hosts: [a.example.com]\nports:\n- number: 70000\n  name: http\n  protocol: HTTP\n",
        [(3, "spec.ports[0].number", "must be between 1 and 65535, got 70000")],
    ),
    (
        "port-number-type",
        "hosts: [a.example.com]\nports:\n- number: '80'\n  name: http\n  protocol: HTTP\n",
        [(3, "spec.ports[0].number", "expected an integer, got string '80'")],
    ),
    (
        "port-name-missing",
        "hosts: [a.example.com]\nports:\n- number: 80\n  protocol: HTTP\n",
        [(3, "spec.ports[0].name", "required field is missing")],
    ),
    (
        "port-name-invalid",
        "hosts: [a.example.com]\nports:\n- {number: 80, name: Http_1, protocol: HTTP}\n",
        [(3, "spec.ports[0].name", "invalid port name 'Http_1'")],
    ),
    (
        "port-name-duplicate",
        "hosts: [a.example.com]\nports:\n- {number: 80, name: web, protocol: HTTP}\n"
        "- {number: 81, name: web, protocol: HTTP}\n",
        [(4, "spec.ports[1].name", "port name 'web' is already used")],
    ),
    (
        "port-number-duplicate",
        "hosts: [a.example.com]\nports:\n- {number: 80, name: a, protocol: HTTP}\n"
        "- {number: 80, name: b, protocol: HTTP}\n",
        [(4, "spec.ports[1].number", "port 80 is already defined")],
    ),
    (
        "protocol-missing",
        "hosts: [a.example.com]\nports:\n- {number: 80, name: http}\n",
        [(3, "spec.ports[0].protocol", "required field is missing (one of HTTP, HTTP2, GRPC")],
    ),
    (
        "protocol-unsupported",
        "hosts: [a.example.com]\nports:\n- {number: 80, name: http, protocol: UDP}\n",
        [(3, "spec.ports[0].protocol", "invalid value 'UDP': expected one of HTTP")],
    ),
    (
        "target-port-range",
        "hosts: [a.example.com]\nports:\n- {number: 80, name: http, protocol: HTTP, targetPort: 0}\n",
        [(3, "spec.ports[0].targetPort", "must be between 1 and 65535")],
    ),
    (
        "location-invalid",
        "hosts: [a.example.com]\nlocation: MESH_INTERAL\n",
        [(2, "spec.location", "did you mean 'MESH_INTERNAL'?")],
    ),
    (
        "resolution-invalid",
        "hosts: [a.example.com]\nresolution: dns\n",
        [(2, "spec.resolution", "invalid value 'dns': expected one of NONE, STATIC, DNS, DNS_ROUND_ROBIN")],
    ),
    (
        "unknown-field",
        "hosts: [a.example.com]\nresolutoin: DNS\n",
        [(2, "spec.resolutoin", "unknown field 'resolutoin' (did you mean 'resolution'?)")],
    ),
    (
        "endpoints-with-none",
        "hosts: [a.example.com]\nendpoints:\n- address: 10.0.0.1\n",
        [(2, "spec.endpoints", "endpoints are not allowed with resolution NONE")],
    ),
    (
        "static-endpoint-hostname",
        "hosts: [a.example.com]\nresolution: STATIC\nendpoints:\n- address: db.example.com\n",
        [(4, "spec.endpoints[0].address", "is not an IP address (resolution STATIC needs IP addresses)")],
    ),
    (
        "dns-endpoint-garbage",
        "hosts: [a.example.com]\nresolution: DNS\nendpoints:\n- address: not_a_host\n",
        [(4, "spec.endpoints[0].address", "neither an IP address nor a valid hostname")],
    ),
    (
        "endpoint-unix",
        "hosts: [a.example.com]\nresolution: STATIC\nendpoints:\n- address: unix:///tmp/sock\n",
        [(4, "spec.endpoints[0].address", "not supported by meshplane yet")],
    ),
    (
        "endpoint-address-missing",
        "hosts: [a.example.com]\nresolution: STATIC\nendpoints:\n- labels: {a: b}\n",
        [(4, "spec.endpoints[0].address", "required field is missing")],
    ),
    (
        "endpoint-port-undefined",
        "hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: STATIC\n"
        "endpoints:\n- address: 10.0.0.1\n  ports:\n    htp: 8080\n",
        [(7, "spec.endpoints[0].ports.htp", "port name 'htp' is not one of this ServiceEntry's ports (http)")],
    ),
    (
        "endpoint-port-range",
        "hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: STATIC\n"
        "endpoints:\n- address: 10.0.0.1\n  ports: {http: 0}\n",
        [(6, "spec.endpoints[0].ports.http", "port must be between 1 and 65535, got 0")],
    ),
    (
        "endpoint-locality",
        "hosts: [a.example.com]\nresolution: STATIC\nendpoints:\n- address: 10.0.0.1\n  locality: us//a\n",
        [(5, "spec.endpoints[0].locality", "expected region, region/zone or region/zone/subzone")],
    ),
    (
        "endpoints-and-selector",
        "hosts: [a.example.com]\nresolution: STATIC\nworkloadSelector: {labels: {app: a}}\n"
        "endpoints:\n- address: 10.0.0.1\n",
        [(0, "spec", "only one of workloadSelector or endpoints may be set")],
    ),
    (
        "selector-without-labels",
        "hosts: [a.example.com]\nworkloadSelector: {}\n",
        [(2, "spec.workloadSelector.labels", "required field is missing")],
    ),
    (
        "selector-empty-labels",
        "hosts: [a.example.com]\nworkloadSelector:\n  labels: {}\n",
        [(3, "spec.workloadSelector.labels", "must have at least one label")],
    ),
    (
        "selector-wildcard",
        "hosts: [a.example.com]\nworkloadSelector:\n  labels:\n    app: '*'\n",
        [(4, "spec.workloadSelector.labels.app", "invalid label value '*'")],
    ),
    (
        "round-robin-two-endpoints",
        "hosts: [a.example.com]\nresolution: DNS_ROUND_ROBIN\nendpoints:\n- address: a.example.net\n"
        "- address: b.example.net\n",
        [(3, "spec.endpoints", "at most one endpoint")],
    ),
    (
        "dns-wildcard-without-endpoints",
        "hosts: ['*.example.com']\nresolution: DNS\n",
        [(1, "spec.hosts[0]", "cannot be resolved by DNS")],
    ),
    (
        "several-hosts-with-tcp",
        "hosts: [a.example.com, b.example.com]\nports: [{number: 5432, name: pg, protocol: TCP}]\nresolution: DNS\n",
        [(1, "spec.hosts", "several hosts with non-HTTP, non-TLS ports (pg)")],
    ),
    (
        "export-to-invalid",
        "hosts: [a.example.com]\nexportTo: [Bad_NS]\n",
        [(2, "spec.exportTo[0]", "invalid namespace 'Bad_NS'")],
    ),
    (
        "export-to-duplicate",
        "hosts: [a.example.com]\nexportTo: ['.', ns]\n",
        [(2, "spec.exportTo[1]", "duplicate entry 'ns' in exportTo")],
    ),
    (
        "export-to-star-and-more",
        "hosts: [a.example.com]\nexportTo: ['*', other]\n",
        [(2, "spec.exportTo", "cannot export to everyone (*) and also list other namespaces")],
    ),
    (
        "subject-alt-name-empty",
        "hosts: [a.example.com]\nsubjectAltNames: ['']\n",
        [(2, "spec.subjectAltNames[0]", "must not be empty")],
    ),
    (
        "wildcard-none",
        "hosts: ['*.example.com']\nports: [{number: 80, name: http, protocol: HTTP}]\n",
        [(1, "spec.hosts[0]", "wildcard host '*.example.com' with resolution NONE is not supported by meshplane yet")],
    ),
    (
        "round-robin-selector",
        "hosts: [a.example.com]\nresolution: DNS_ROUND_ROBIN\nworkloadSelector: {labels: {app: a}}\n",
        [(3, "spec.workloadSelector", "with resolution DNS_ROUND_ROBIN not supported by meshplane yet")],
    ),
    (
        "endpoint-network",
        "hosts: [a.example.com]\nresolution: STATIC\nendpoints: [{address: 10.0.0.1, network: n1}]\n",
        [(3, "spec.endpoints[0].network", "not supported by meshplane yet: there is no multi-network support")],
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in SERVICE_ENTRY_CASES], ids=[c[0] for c in SERVICE_ENTRY_CASES]
)
def test_service_entry_rejections(istio: IstioDocs, body: str, expected: Expected) -> None:
    errors = istio.errors("ServiceEntry", body)
    for line, path, message in expected:
        istio.assert_error(errors, "ServiceEntry", line, path, message)
    assert len(errors) == len(expected), errors


VALID_SERVICE_ENTRIES = [
    ("external-dns", "hosts: [api.example.com]\nports: [{number: 443, name: https, protocol: TLS}]\nresolution: DNS\n"),
    ("wildcard-dns-endpoints", "hosts: ['*.example.com']\nresolution: DNS\nendpoints: [{address: lb.example.net}]\n"),
    (
        "several-http-hosts",
        "hosts: [a.example.com, b.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: DNS\n",
    ),
    ("round-robin-one", "hosts: [a.example.com]\nresolution: DNS_ROUND_ROBIN\nendpoints: [{address: lb.example.net}]"),
    ("export-to-nobody", "hosts: [a.example.com]\nexportTo: ['~']\n"),
    ("addresses-dns", "hosts: [a.example.com]\naddresses: [10.0.0.1, '2001:db8::1']\nresolution: DNS\n"),
    ("cidr-static", "hosts: [a.example.com]\naddresses: [10.0.0.0/24]\nresolution: STATIC\n"),
]


@pytest.mark.parametrize("body", [c[1] for c in VALID_SERVICE_ENTRIES], ids=[c[0] for c in VALID_SERVICE_ENTRIES])
def test_valid_service_entries(istio: IstioDocs, body: str) -> None:
    assert isinstance(istio.accepted("ServiceEntry", body), ServiceEntry)


def test_service_entry_fields_are_converted(istio: IstioDocs) -> None:
    entry = istio.accepted(
        "ServiceEntry",
        """\
        hosts: [reviews.bookinfo.svc.cluster.local]
        location: MESH_INTERNAL
        ports:
        - {number: 9080, name: http, protocol: http, targetPort: 19080}
        - {number: 9443, name: grpc-api, protocol: Grpc}
        resolution: STATIC
        endpoints:
        - address: 127.0.0.21
          ports: {http: 29080}
          labels: {version: v1}
          weight: 3
          locality: us-east/zone-a
          serviceAccount: reviews
        - address: 127.0.0.22
          weight: 0
        subjectAltNames: [spiffe://cluster.local/ns/bookinfo/sa/reviews]
        """,
    )
    assert isinstance(entry, ServiceEntry)
    assert entry.location == "MESH_INTERNAL"
    assert entry.resolution is Resolution.STATIC
    assert [(p.number, p.name, p.protocol, p.target_port) for p in entry.ports] == [
        (9080, "http", Protocol.HTTP, 19080),
        (9443, "grpc-api", Protocol.GRPC, None),
    ]
    first, second = entry.endpoints
    assert (first.address, dict(first.ports), dict(first.labels), first.weight) == (
        "127.0.0.21",
        {"http": 29080},
        {"version": "v1"},
        3,
    )
    assert (first.locality, first.service_account) == ("us-east/zone-a", "reviews")
    assert second.weight is None  # proto3: 0 is unset
    assert entry.workload_selector is None
    assert entry.subject_alt_names == ("spiffe://cluster.local/ns/bookinfo/sa/reviews",)
    assert entry.addresses == ()


def test_addresses_are_kept_as_written(istio: IstioDocs) -> None:
    entry = istio.accepted("ServiceEntry", "hosts: [db.example.com]\naddresses: [10.1.2.3, 10.9.0.0/16, 10.8.0.7/32]\n")
    assert isinstance(entry, ServiceEntry)
    assert entry.addresses == ("10.1.2.3", "10.9.0.0/16", "10.8.0.7/32")


def test_workload_selector_is_kept(istio: IstioDocs) -> None:
    entry = istio.accepted("ServiceEntry", "hosts: [a.example.com]\nworkloadSelector:\n  labels: {app: a}\n")
    assert isinstance(entry, ServiceEntry)
    assert entry.workload_selector is not None and dict(entry.workload_selector) == {"app": "a"}


WORKLOAD_ENTRY_CASES: list[tuple[str, str, Expected]] = [
    ("address-missing", "labels: {app: a}\n", [(0, "spec.address", "required field is missing")]),
    ("address-empty", "address: ''\n", [(1, "spec.address", "must not be empty")]),
    ("address-hostname", "address: web.example.com\n", [(1, "spec.address", "not supported by meshplane yet")]),
    ("address-type", "address: 127\n", [(1, "spec.address", "expected a string, got integer 127")]),
    (
        "port-range",
        "address: 127.0.0.2\nports:\n  http: 65536\n",
        [(3, "spec.ports.http", "port must be between 1 and 65535, got 65536")],
    ),
    (
        "port-type",
        "address: 127.0.0.2\nports:\n  http: '80'\n",
        [(3, "spec.ports.http", "expected a port number, got string '80'")],
    ),
    (
        "port-name",
        "address: 127.0.0.2\nports:\n  HTTP: 80\n",
        [(3, "spec.ports.HTTP", "invalid port name 'HTTP'")],
    ),
    ("weight-negative", "address: 127.0.0.2\nweight: -1\n", [(2, "spec.weight", "must be at least 0, got -1")]),
    (
        "labels-value",
        "address: 127.0.0.2\nlabels:\n  version: 'v1 beta'\n",
        [(3, "spec.labels.version", "invalid label value 'v1 beta'")],
    ),
    ("locality", "address: 127.0.0.2\nlocality: /zone\n", [(2, "spec.locality", "invalid locality '/zone'")]),
    ("network", "address: 127.0.0.2\nnetwork: n1\n", [(2, "spec.network", "not supported by meshplane yet")]),
    (
        "unknown",
        "address: 127.0.0.2\nserviceAcount: web\n",
        [(2, "spec.serviceAcount", "did you mean 'serviceAccount'?")],
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in WORKLOAD_ENTRY_CASES], ids=[c[0] for c in WORKLOAD_ENTRY_CASES]
)
def test_workload_entry_rejections(istio: IstioDocs, body: str, expected: Expected) -> None:
    errors = istio.errors("WorkloadEntry", body)
    for line, path, message in expected:
        istio.assert_error(errors, "WorkloadEntry", line, path, message)
    assert len(errors) == len(expected), errors


def test_workload_entry_fields_are_converted(istio: IstioDocs) -> None:
    workload = istio.accepted(
        "WorkloadEntry",
        """\
        address: 127.0.0.21
        ports: {http: 19080, grpc: 19443}
        labels: {app: reviews, version: v1}
        weight: 2
        locality: eu/z1/s1
        serviceAccount: reviews
        """,
    )
    assert isinstance(workload, WorkloadEntry)
    assert workload.address == "127.0.0.21"
    assert list(workload.ports.items()) == [("grpc", 19443), ("http", 19080)]  # sorted, read-only
    assert dict(workload.labels) == {"app": "reviews", "version": "v1"}
    assert (workload.weight, workload.locality, workload.service_account) == (2, "eu/z1/s1", "reviews")


def test_workload_entry_accepts_ipv6(istio: IstioDocs) -> None:
    assert isinstance(istio.accepted("WorkloadEntry", "address: '::1'\n"), WorkloadEntry)
