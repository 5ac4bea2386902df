"""Mixer's ext_authz server: ``envoy.service.auth.v3.Authorization/Check`` over the policy engine.

Envoy's HTTP ext_authz filter (gRPC service, cluster ``mixer``) sends a ``CheckRequest`` per request; Mixer turns
it into Istio attributes (``mixer.attributes``), evaluates every Mixer policy of the destination workload
(``mixer.checks``) and answers:

- allowed: ``status`` OK and an ``ok_response`` (Envoy forwards the request unchanged);
- denied by an AccessList or an evaluation error: ``status`` PERMISSION_DENIED and a ``denied_response`` with HTTP
  403; rate limited: ``status`` RESOURCE_EXHAUSTED and HTTP 429 with ``retry-after``. Envoy sends the denied
  response's status, headers and body to the caller: the body is the reason (``text/plain``), and the
  ``x-mixer-reason`` header carries it too.

Every denial is logged at info with the attributes that decided it (source address, workload and principal,
destination workload, address and port, method, path), the policy and the value it evaluated; header values other
than the one a policy evaluated are never logged. Each answer is counted in ``mixer_checks_total{result}`` and timed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import grpc
import structlog
from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse
from envoy.type.v3.http_status_pb2 import HttpStatus
from google.rpc import code_pb2, status_pb2

from mixer.attributes import CheckAttributes
from mixer.checks import ALLOWED, Decision, PolicyEngine
from mixer.metrics import MixerMetrics

__all__ = [
    "AUTHORIZATION_SERVICE",
    "OK_RESPONSE",
    "AuthorizationService",
    "add_authorization_service",
    "check_response",
]

log = structlog.get_logger(__name__)

AUTHORIZATION_SERVICE = "envoy.service.auth.v3.Authorization"
_RPC_CODES = {403: code_pb2.PERMISSION_DENIED, 429: code_pb2.RESOURCE_EXHAUSTED}


def check_response(decision: Decision) -> CheckResponse:
    """The CheckResponse that tells Envoy ``decision``."""
    if decision.allowed:
        return CheckResponse(status=status_pb2.Status(code=code_pb2.OK), ok_response=OkHttpResponse())
    headers = [
        HeaderValueOption(header=HeaderValue(key=name, value=value))
        for name, value in (*decision.headers, ("content-type", "text/plain"))
    ]
    return CheckResponse(
        status=status_pb2.Status(
            code=_RPC_CODES.get(decision.status, code_pb2.PERMISSION_DENIED), message=decision.reason
        ),
        denied_response=DeniedHttpResponse(
            status=HttpStatus(code=decision.status),  # the StatusCode enum values are the HTTP codes
            headers=headers,
            body=decision.reason + "\n",
        ),
    )


OK_RESPONSE: bytes = check_response(ALLOWED).SerializeToString()


class AuthorizationService:
    """The Check handler: attributes, decision, metrics, denial log."""

    def __init__(self, engine: PolicyEngine, metrics: MixerMetrics) -> None:
        self.engine = engine
        self.metrics = metrics

    async def check(self, request: CheckRequest, context: grpc.aio.ServicerContext[CheckRequest, bytes]) -> bytes:
        """The serialized CheckResponse for ``request``: the engine's decision on its attributes (each root built
        when a policy, or the denial log, reads it); with a shared quota store, RateLimits count in it (awaited)."""
        started = time.perf_counter()
        attributes = CheckAttributes(request, self.engine.registry)
        if self.engine.shared_quota is None:
            decision = self.engine.check(attributes, destination_ip=attributes.destination_ip)
        else:
            decision = await self.engine.check_shared(attributes, destination_ip=attributes.destination_ip)
        self.metrics.check_answered(decision.result, time.perf_counter() - started)
        if decision.allowed:
            return OK_RESPONSE
        _log_denial(attributes, decision)
        denied: bytes = check_response(decision).SerializeToString()
        return denied

    def handler(self) -> grpc.GenericRpcHandler:
        handlers: dict[str, grpc.RpcMethodHandler[CheckRequest, bytes]] = {
            "Check": grpc.unary_unary_rpc_method_handler(
                self.check,
                request_deserializer=CheckRequest.FromString,
                response_serializer=None,  # check answers serialized bytes
            )
        }
        return grpc.method_handlers_generic_handler(AUTHORIZATION_SERVICE, handlers)


def _log_denial(attributes: Mapping[str, Any], decision: Decision) -> None:
    source, destination, request = attributes["source"], attributes["destination"], attributes["request"]
    log.info(
        "check denied",
        result=decision.result,
        status=decision.status,
        policy=decision.policy,
        value=decision.value,
        reason=decision.reason,
        source_ip=source["ip"],
        source_workload=_workload(source["workload"]),
        source_principal=source["principal"],
        destination_workload=_workload(destination["workload"]),
        destination_ip=destination["ip"],
        destination_port=destination["port"],
        method=request["method"],
        path=request["path"],
    )


def _workload(workload: dict[str, str]) -> str:
    return f"{workload['namespace']}/{workload['name']}" if workload["name"] else ""


def add_authorization_service(
    server: grpc.aio.Server, engine: PolicyEngine, metrics: MixerMetrics
) -> AuthorizationService:
    """Serve ``Authorization/Check`` on ``server`` (before it starts) with ``engine``; returns the service."""
    service = AuthorizationService(engine, metrics)
    server.add_generic_rpc_handlers((service.handler(),))
    return service
