"""Mixer's ext_authz server (mixer/authz_service.py): CheckResponses unit-tested field by field, and the protocol
over a real grpc.aio server and client on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import MappingProxyType

import grpc
import pytest
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest, CheckResponse
from envoy.service.auth.v3.external_auth_pb2_grpc import AuthorizationStub
from google.rpc import code_pb2
from structlog.testing import capture_logs

from mixer.authz_service import add_authorization_service, check_response
from mixer.checks import ALLOWED, Decision, PolicyEngine
from mixer.metrics import MixerMetrics
from pilot.config.types import AccessList, ConfigMeta, RateLimit
from pilot.model import MeshSnapshot
from tests.conftest import MIXER_REVIEWS_IP

MakeMeta = Callable[..., ConfigMeta]
MakeRequest = Callable[..., CheckRequest]
MakeMesh = Callable[..., MeshSnapshot]
REVIEWS = MappingProxyType({"app": "reviews"})
REASON = 'AccessList default/blocked-users: request.headers["x-user"] "jason" is listed (mode deny)'


def headers_of(response: CheckResponse) -> list[tuple[str, str]]:
    return [(option.header.key, option.header.value) for option in response.denied_response.headers]


def test_allowed_response() -> None:
    response = check_response(ALLOWED)
    assert response.status.code == code_pb2.OK
    assert response.WhichOneof("http_response") == "ok_response"
    assert not response.ok_response.headers


def test_denied_response() -> None:
    decision = Decision(
        allowed=False, result="denied", status=403, reason=REASON, headers=(("x-mixer-reason", REASON),)
    )
    response = check_response(decision)
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert response.status.message == REASON
    assert response.WhichOneof("http_response") == "denied_response"
    assert response.denied_response.status.code == 403
    assert headers_of(response) == [("x-mixer-reason", REASON), ("content-type", "text/plain")]
    assert response.denied_response.body == REASON + "\n"


def test_rate_limited_response() -> None:
    decision = Decision(
        allowed=False,
        result="rate_limited",
        status=429,
        reason="over",
        headers=(("x-mixer-reason", "over"), ("retry-after", "3")),
    )
    response = check_response(decision)
    assert response.status.code == code_pb2.RESOURCE_EXHAUSTED
    assert response.denied_response.status.code == 429
    assert headers_of(response) == [("x-mixer-reason", "over"), ("retry-after", "3"), ("content-type", "text/plain")]
    assert response.denied_response.body == "over\n"


def blocked_users(make_meta: MakeMeta, value: str) -> AccessList:
    """AccessList default/blocked-users on reviews: ``value`` must not be ``jason``."""
    return AccessList(
        meta=make_meta("AccessList", "blocked-users"), selector=REVIEWS, value=value, entries=("jason",), mode="deny"
    )


@dataclass(slots=True, kw_only=True)
class MixerUnderTest:
    stub: AuthorizationStub
    metrics: MixerMetrics
    engine: PolicyEngine


@pytest.fixture
async def mixer(make_meta: MakeMeta, mixer_mesh: MakeMesh) -> AsyncIterator[MixerUnderTest]:
    """A grpc.aio server on 127.0.0.1 (random port) serving Check over reviews' blocked-users list (deny jason)
    and a quota of 2 requests per minute per principal, and a client stub for it."""
    blocked = blocked_users(make_meta, 'request.headers["x-user"]')
    quota = RateLimit(meta=make_meta("RateLimit", "quota"), selector=REVIEWS, requests=2, per=60.0)
    engine = PolicyEngine(mixer_mesh(blocked, quota))
    metrics = MixerMetrics()
    server = grpc.aio.server()
    add_authorization_service(server, engine, metrics)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield MixerUnderTest(stub=AuthorizationStub(channel), metrics=metrics, engine=engine)
    finally:
        await server.stop(grace=0)
        metrics.shutdown()


async def test_check_protocol(mixer: MixerUnderTest, make_check_request: MakeRequest) -> None:
    allowed = await mixer.stub.Check(make_check_request(headers={"x-user": "bob"}))
    assert allowed.status.code == code_pb2.OK
    assert allowed.WhichOneof("http_response") == "ok_response"

    with capture_logs() as logs:
        denied = await mixer.stub.Check(make_check_request(path="/reviews/7", headers={"x-user": "jason"}))
    assert denied.status.code == code_pb2.PERMISSION_DENIED
    assert denied.WhichOneof("http_response") == "denied_response"
    assert denied.denied_response.status.code == 403
    assert headers_of(denied) == [("x-mixer-reason", REASON), ("content-type", "text/plain")]
    assert denied.denied_response.body == REASON + "\n"
    denials = [entry for entry in logs if entry["event"] == "check denied"]
    assert denials == [
        {
            "event": "check denied",
            "log_level": "info",
            "result": "denied",
            "status": 403,
            "policy": "AccessList/default/blocked-users",
            "value": "jason",
            "reason": REASON,
            "source_ip": "127.0.0.11",
            "source_workload": "default/productpage-v1",
            "source_principal": "cluster.local/ns/default/sa/bookinfo-productpage",
            "destination_workload": "default/reviews-v1",
            "destination_ip": MIXER_REVIEWS_IP,
            "destination_port": 9080,
            "method": "GET",
            "path": "/reviews/7",
        }
    ]

    assert (await mixer.stub.Check(make_check_request(headers={"x-user": "bob"}))).status.code == code_pb2.OK
    limited = await mixer.stub.Check(make_check_request(headers={"x-user": "bob"}))
    assert limited.status.code == code_pb2.RESOURCE_EXHAUSTED
    assert limited.denied_response.status.code == 429
    retry_after = dict(headers_of(limited))["retry-after"]
    assert 59 <= int(retry_after) <= 60
    assert dict(headers_of(limited))["x-mixer-reason"].startswith("RateLimit default/quota: source.principal ")
    assert limited.denied_response.body.endswith(f"retry after {retry_after}s\n")

    exposition = mixer.metrics.exposition().decode()
    assert 'mixer_checks_total{result="allowed"} 2.0' in exposition
    assert 'mixer_checks_total{result="denied"} 1.0' in exposition
    assert 'mixer_checks_total{result="rate_limited"} 1.0' in exposition
    assert "mixer_check_duration_seconds_count 4.0" in exposition


async def test_check_without_the_header_passes_the_deny_list(
    mixer: MixerUnderTest, make_check_request: MakeRequest
) -> None:
    response = await mixer.stub.Check(make_check_request())
    assert response.status.code == code_pb2.OK
    assert response.WhichOneof("http_response") == "ok_response"
    assert 'mixer_checks_total{result="allowed"} 1.0' in mixer.metrics.exposition().decode()


async def test_check_with_an_evaluation_error_is_an_error(
    make_meta: MakeMeta, mixer_mesh: MakeMesh, mixer: MixerUnderTest, make_check_request: MakeRequest
) -> None:
    mixer.engine.update(mixer_mesh(blocked_users(make_meta, 'request.headers["x-user"] + 1'), version=2))
    response = await mixer.stub.Check(make_check_request(headers={"x-user": "bob"}))
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert response.denied_response.status.code == 403
    assert response.denied_response.body.startswith(
        'AccessList default/blocked-users: expression request.headers["x-user"] + 1 failed: TypeError '
    )
    assert 'mixer_checks_total{result="error"} 1.0' in mixer.metrics.exposition().decode()


async def test_check_for_a_workload_without_policies(mixer: MixerUnderTest, make_check_request: MakeRequest) -> None:
    response = await mixer.stub.Check(make_check_request(destination_ip="127.0.0.41", headers={"x-user": "jason"}))
    assert response.status.code == code_pb2.OK
    assert response.WhichOneof("http_response") == "ok_response"
