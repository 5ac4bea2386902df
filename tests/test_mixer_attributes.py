"""Istio attributes built from Envoy ext_authz CheckRequests (mixer/attributes.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.auth.v3.attribute_context_pb2 import AttributeContext
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest

from mixer.attributes import CheckAttributes, check_attributes, principal_parts, request_headers
from mixer.registry import WorkloadInfo, WorkloadRegistry
from pilot.config.expressions import ATTRIBUTES, compile_expression
from pilot.model import MeshSnapshot
from tests.conftest import MIXER_PRODUCTPAGE_IP, MIXER_RATINGS_IP, MIXER_REVIEWS_IP

MakeRequest = Callable[..., CheckRequest]
MakeMesh = Callable[..., MeshSnapshot]


def test_mtls_request_from_a_known_workload(mixer_mesh: MakeMesh, make_check_request: MakeRequest) -> None:
    registry = WorkloadRegistry(mixer_mesh())
    request = make_check_request(
        method="POST", path="/reviews/1?x=1", headers={"X-User": "jason"}, sni="outbound_.9080_._.reviews"
    )
    attributes = check_attributes(request, registry)
    source = attributes["source"]
    assert source["ip"] == MIXER_PRODUCTPAGE_IP
    assert source["port"] == 43210
    assert source["principal"] == "cluster.local/ns/default/sa/bookinfo-productpage"
    assert source["namespace"] == "default"
    assert source["service_account"] == "bookinfo-productpage"
    assert source["workload"] == {"name": "productpage-v1", "namespace": "default"}
    assert dict(source["labels"]) == {"app": "productpage"}
    destination = attributes["destination"]
    assert destination["ip"] == MIXER_REVIEWS_IP
    assert destination["port"] == 9080
    assert destination["principal"] == "cluster.local/ns/default/sa/reviews"
    assert destination["service"] == {
        "host": "reviews.default.svc.cluster.local",
        "name": "reviews",
        "namespace": "default",
    }
    assert destination["workload"] == {"name": "reviews-v1", "namespace": "default"}
    assert dict(destination["labels"]) == {"app": "reviews", "version": "v1"}
    req = attributes["request"]
    assert req["method"] == "POST"
    assert req["path"] == "/reviews/1?x=1"
    assert req["host"] == "reviews:9080"
    assert req["scheme"] == "http"
    assert req["protocol"] == "HTTP/1.1"
    assert req["id"] == "0b5a4b3c-1"
    assert req["useragent"] == "curl/8.5.0"
    assert req["headers"]["x-user"] == "jason"
    assert "X-User" not in req["headers"]
    assert attributes["connection"] == {"mtls": True, "requested_server_name": "outbound_.9080_._.reviews"}


def test_plaintext_request_from_an_unknown_source(mixer_mesh: MakeMesh, make_check_request: MakeRequest) -> None:
    registry = WorkloadRegistry(mixer_mesh())
    request = make_check_request(source_ip="10.9.9.9", principal="", destination_ip=MIXER_RATINGS_IP)
    attributes = check_attributes(request, registry)
    assert attributes["source"] == {
        "ip": "10.9.9.9",
        "port": 43210,
        "principal": "",
        "namespace": "",
        "service_account": "",
        "workload": {"name": "", "namespace": ""},
        "labels": {},
    }
    assert attributes["destination"]["workload"] == {"name": "ratings-v1", "namespace": "default"}
    assert attributes["destination"]["service"]["host"] == "ratings.default.svc.cluster.local"
    assert attributes["destination"]["principal"] == ""
    assert attributes["connection"] == {"mtls": False, "requested_server_name": ""}


def test_unknown_source_with_a_certificate_takes_namespace_from_principal(
    mixer_mesh: MakeMesh, make_check_request: MakeRequest
) -> None:
    request = make_check_request(source_ip="10.9.9.9", principal="spiffe://cluster.local/ns/shop/sa/cart")
    source = check_attributes(request, WorkloadRegistry(mixer_mesh()))["source"]
    assert source["principal"] == "cluster.local/ns/shop/sa/cart"
    assert (source["namespace"], source["service_account"]) == ("shop", "cart")
    assert source["workload"] == {"name": "", "namespace": ""}


def test_empty_request_has_every_attribute(mixer_mesh: MakeMesh) -> None:
    attributes = check_attributes(CheckRequest(), WorkloadRegistry(mixer_mesh()))
    assert attributes["source"]["ip"] == "" and attributes["source"]["port"] == 0
    assert attributes["destination"]["service"] == {"host": "", "name": "", "namespace": ""}
    assert attributes["destination"]["workload"] == {"name": "", "namespace": ""}
    assert attributes["request"] == {
        "method": "",
        "path": "",
        "host": "",
        "scheme": "",
        "protocol": "",
        "id": "",
        "useragent": "",
        "headers": {},
    }
    assert attributes["connection"] == {"mtls": False, "requested_server_name": ""}


_REVIEWS_SERVICE = {"host": "reviews.default.svc.cluster.local", "name": "reviews", "namespace": "default"}


@pytest.mark.parametrize(
    ("port", "service"),
    [
        (9080, _REVIEWS_SERVICE),
        (19080, _REVIEWS_SERVICE),  # a pod's sidecar also serves the app's own port (clients may dial it)
        (7777, {"host": "", "name": "", "namespace": ""}),
    ],
    ids=["service-port", "target-port", "unknown-port"],
)
def test_destination_service_by_destination_port(
    mixer_mesh: MakeMesh, make_check_request: MakeRequest, port: int, service: dict[str, str]
) -> None:
    attributes = check_attributes(make_check_request(destination_port=port), WorkloadRegistry(mixer_mesh()))
    assert attributes["destination"]["service"] == service
    assert attributes["destination"]["workload"]["name"] == "reviews-v1"


def test_peer_certificate_alone_means_mtls(mixer_mesh: MakeMesh, make_check_request: MakeRequest) -> None:
    request = make_check_request(principal="")
    request.attributes.source.certificate = "-----BEGIN CERTIFICATE-----\n..."
    assert check_attributes(request, WorkloadRegistry(mixer_mesh()))["connection"]["mtls"] is True


def test_raw_header_map_is_read_when_headers_are_not_sent() -> None:
    http = AttributeContext.HttpRequest(
        header_map=HeaderMap(
            headers=[
                HeaderValue(key="X-Token", raw_value=b"abc"),
                HeaderValue(key="accept", value="text/html"),
                HeaderValue(key="Accept", value="*/*"),
            ]
        )
    )
    assert request_headers(http) == {"x-token": "abc", "accept": "text/html,*/*"}


def test_principal_parts() -> None:
    assert principal_parts("cluster.local/ns/default/sa/reviews") == ("default", "reviews")
    assert principal_parts("example.com/workload/x") == ("", "")
    assert principal_parts("") == ("", "")


def test_cel_reads_the_attributes(mixer_mesh: MakeMesh, make_check_request: MakeRequest) -> None:
    attributes: dict[str, Any] = check_attributes(
        make_check_request(headers={"x-user": "jason"}), WorkloadRegistry(mixer_mesh())
    )
    expressions = {
        'source.workload.name + "/" + destination.service.name': "productpage-v1/reviews",
        'source.labels["app"]': "productpage",
        'request.headers["x-user"]': "jason",
        '"x-missing" in request.headers': False,
        "connection.mtls && destination.port == 9080": True,
    }
    for source, expected in expressions.items():
        assert compile_expression(source).execute(attributes) == expected, source


def _attribute_kinds(attributes: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Every attribute of ``attributes`` by dotted name: ``map`` for the request's own maps, ``value`` otherwise."""
    kinds: dict[str, str] = {}
    for name, value in attributes.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, Mapping) and ATTRIBUTES.get(dotted) != "map":
            kinds.update(_attribute_kinds(value, f"{dotted}."))
        else:
            kinds[dotted] = "map" if isinstance(value, Mapping) else "value"
    return kinds


def test_every_check_carries_exactly_the_validated_vocabulary(
    mixer_mesh: MakeMesh, make_check_request: MakeRequest
) -> None:
    registry = WorkloadRegistry(mixer_mesh())
    known = check_attributes(make_check_request(headers={"x-user": "jason"}), registry)
    unknown = check_attributes(make_check_request(source_ip="10.9.9.9", principal="", destination_ip=""), registry)
    assert _attribute_kinds(known) == dict(ATTRIBUTES)
    assert _attribute_kinds(unknown) == dict(ATTRIBUTES)  # nothing missing: only map entries can be absent


class _CountingRegistry(WorkloadRegistry):
    """A registry that counts the addresses resolved through it."""

    lookups = 0

    def workload_at(self, address: str) -> WorkloadInfo | None:
        self.lookups += 1
        return super().workload_at(address)


def test_lazy_attributes_build_a_root_when_read(mixer_mesh: MakeMesh, make_check_request: MakeRequest) -> None:
    registry = _CountingRegistry(mixer_mesh())
    request = make_check_request(headers={"x-user": "jason"})
    attributes = CheckAttributes(request, registry)
    assert (attributes.destination_ip, attributes.destination_port) == (MIXER_REVIEWS_IP, 9080)
    assert attributes["request"]["headers"]["x-user"] == "jason"
    assert registry.lookups == 0  # neither workload resolved for a policy that reads only the request
    assert attributes["source"] is attributes["source"]
    assert registry.lookups == 1
    assert dict(attributes) == check_attributes(request, registry)
    assert list(attributes) == ["source", "destination", "request", "connection"] and len(attributes) == 4
