"""Istio's sample external authorizer (``samples/extauthz``), both its halves, with the sample's semantics: a check
whose request carries ``x-ext-authz: allow`` is allowed (``x-ext-authz-check-result: allowed``), any other denied
with 403, the sample's body and ``x-ext-authz-check-result: denied``. A gRPC check of a TCP connection (no HTTP
request) is allowed when the source principal is the allowed service account's (the sample's
``--allow_service_account``; here the third argument, none by default).

- HTTP (Envoy's ``envoy_ext_authz_http`` service: the request's method, path and headers sent as a request);
- gRPC (Envoy's ``envoy.service.auth.v3.Authorization/Check``).

A user's authorizer in a pod of the e2e mesh, not a meshplane part. Run: ``python -m e2e.ext_authz_sample
HTTP_PORT GRPC_PORT [ALLOWED_SERVICE_ACCOUNT]`` (serves both until killed).
"""

from __future__ import annotations

import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse
from envoy.type.v3.http_status_pb2 import HttpStatus
from google.rpc import code_pb2, status_pb2

SERVICE = "envoy.service.auth.v3.Authorization"
DENIED_BODY = "denied by ext_authz for not found header `x-ext-authz: allow` in the request"
RESULT_HEADER = "x-ext-authz-check-result"
SERVED_BY_HEADER = "x-ext-authz-served-by"  # not the sample's: which half answered (grpc, http), for the scenario


def _header(name: str, value: str) -> HeaderValueOption:
    return HeaderValueOption(header=HeaderValue(key=name, value=value))


def _allowed(request: CheckRequest, service_account: str) -> bool:
    if request.attributes.HasField("request"):  # an HTTP request's check
        return str(request.attributes.request.http.headers.get("x-ext-authz", "")) == "allow"
    return bool(service_account) and request.attributes.source.principal.endswith(f"/sa/{service_account}")


def check(request: CheckRequest, service_account: str) -> CheckResponse:
    if _allowed(request, service_account):
        return CheckResponse(
            status=status_pb2.Status(code=code_pb2.OK),
            ok_response=OkHttpResponse(headers=[_header(RESULT_HEADER, "allowed")]),
        )
    return CheckResponse(
        status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED),
        denied_response=DeniedHttpResponse(
            status=HttpStatus(code=403),
            headers=[_header(RESULT_HEADER, "denied"), _header(SERVED_BY_HEADER, "grpc")],
            body=DENIED_BODY,
        ),
    )


class _HttpCheck(BaseHTTPRequestHandler):
    def check(self) -> None:
        allowed = self.headers.get("x-ext-authz") == "allow"
        body = b"" if allowed else DENIED_BODY.encode()
        self.send_response(200 if allowed else 403)
        self.send_header(RESULT_HEADER, "allowed" if allowed else "denied")
        self.send_header(SERVED_BY_HEADER, "http")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = check

    def log_message(self, format: str, *args: object) -> None:  # the stdlib's parameter name
        pass


def main(http_port: int, grpc_port: int, service_account: str = "") -> None:
    http = ThreadingHTTPServer(("0.0.0.0", http_port), _HttpCheck)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(
        lambda request, _context: check(request, service_account),
        request_deserializer=CheckRequest.FromString,
        response_serializer=CheckResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"Check": handler})])
    server.add_insecure_port(f"0.0.0.0:{grpc_port}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:4])
