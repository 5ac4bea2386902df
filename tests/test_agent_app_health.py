"""The agent performing the app's original probes (``agent.app_health``) and serving them on its status port
(``agent.status_server``), against real local servers: an HTTP/1.1 app (plain and TLS), a closed port, a gRPC health
service; and the probers JSON the agent reads (``agent.app_probers``)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from agent.app_health import ProbeTarget, probe_app
from agent.app_probers import AppProber, AppProbersError, parse_app_probers
from agent.status_server import StatusServer
from tests.mtls_builders import write_test_pki

# path -> (status, extra response headers, body, seconds before answering)
Route = tuple[int, Mapping[str, str], bytes, float]
ROUTES: dict[str, Route] = {
    "/ok": (200, {}, b"fine", 0.0),
    "/unavailable": (503, {}, b"warming up", 0.0),
    "/slow": (200, {}, b"", 5.0),
    "/moved": (301, {"Location": "/ok"}, b"", 0.0),
    "/elsewhere": (302, {"Location": "http://other.example/"}, b"", 0.0),
    "/loop": (302, {"Location": "/loop"}, b"", 0.0),
    "/down-after-redirect": (302, {"Location": "/unavailable"}, b"", 0.0),
    "/big": (200, {}, b"x" * 20000, 0.0),
}


@dataclass
class App:
    port: int
    seen: list[tuple[str, dict[str, str], str]] = field(default_factory=list)  # (path, headers, peer address)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def _answer(app: App, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    app.writers.append(writer)
    app.tasks.append(asyncio.current_task())  # type: ignore[arg-type]
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        path = line.split(" ")[1]
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines if h)}
        app.seen.append((path, headers, writer.get_extra_info("peername")[0]))
        status, extra, body, delay = ROUTES.get(path, (404, {}, b"", 0.0))
        await asyncio.sleep(delay)
        head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in extra.items())]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def running_app(tls: ssl.SSLContext | None = None) -> AsyncIterator[App]:
    app = App(port=0)
    server = await asyncio.start_server(lambda r, w: _answer(app, r, w), "127.0.0.1", 0, ssl=tls)
    app.port = server.sockets[0].getsockname()[1]
    try:
        yield app
    finally:
        server.close()
        for task in app.tasks:  # a connection still being answered (the slow route's)
            task.cancel()
        await asyncio.gather(*app.tasks, return_exceptions=True)


@pytest.fixture
async def http_app() -> AsyncIterator[App]:
    async with running_app() as app:
        yield app


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


LOCAL = ProbeTarget(address="127.0.0.1")  # the pod's address; the source 127.0.0.6, as in a pod


def http(port: int, path: str, **fields: object) -> AppProber:
    return AppProber(action="httpGet", port=port, path=path, **fields)  # type: ignore[arg-type]


HTTP_ANSWERS = [
    # (id, path, status the kubelet gets, body)
    ("2xx-as-is", "/ok", 200, b"fine"),
    ("503-as-is", "/unavailable", 503, b"warming up"),
    ("404-as-is", "/missing", 404, b""),
    ("same-host-redirect-followed", "/moved", 200, b"fine"),
    ("redirect-elsewhere-is-success", "/elsewhere", 200, b""),
    ("redirect-to-a-failure-fails", "/down-after-redirect", 503, b"warming up"),
    ("redirect-loop-fails", "/loop", 500, b""),
    ("body-capped-at-10-KiB", "/big", 200, b"x" * 10240),
]  # fmt: skip


@pytest.mark.parametrize(("path", "status", "body"), [c[1:] for c in HTTP_ANSWERS], ids=[c[0] for c in HTTP_ANSWERS])
async def test_http_probe_answer(http_app: App, path: str, status: int, body: bytes) -> None:
    answer = await probe_app(http(http_app.port, path), LOCAL, {})
    assert (answer.status, answer.body) == (status, body), answer.problem


async def test_http_probe_request_as_the_kubelet_sent_it(http_app: App) -> None:
    prober = http(http_app.port, "/ok", headers=(("X-Probe", "mine"),))
    incoming = {"host": "10.1.2.3:15020", "user-agent": "kube-probe/1.20", "x-probe": "kubelet's copy",
                "connection": "close", "accept-encoding": "gzip"}  # fmt: skip
    await probe_app(prober, LOCAL, incoming)
    [(path, headers, peer)] = http_app.seen
    assert (path, peer) == ("/ok", "127.0.0.6")  # the source the capture lets through
    assert headers["host"] == f"10.1.2.3:{http_app.port}"  # the status port replaced by the app's
    assert (headers["user-agent"], headers["x-probe"], headers["connection"]) == ("kube-probe/1.20", "mine", "close")
    assert "accept-encoding" not in headers


async def test_http_probe_host_header_of_the_probe_wins(http_app: App) -> None:
    await probe_app(http(http_app.port, "/ok", host_header="reviews.local"), LOCAL, {"host": "10.1.2.3:15020"})
    assert http_app.seen[0][1]["host"] == "reviews.local"


async def test_http_probe_timeout(http_app: App) -> None:
    started = asyncio.get_running_loop().time()
    answer = await probe_app(http(http_app.port, "/slow", timeout_seconds=1), LOCAL, {})
    assert answer.status == 500 and answer.problem == "no answer within 1 s"
    assert asyncio.get_running_loop().time() - started < 2


@pytest.mark.parametrize("action", ["httpGet", "tcpSocket"])
async def test_connection_refused_is_500(action: str) -> None:
    answer = await probe_app(AppProber(action=action, port=closed_port()), LOCAL, {})  # type: ignore[arg-type]
    assert answer.status == 500 and answer.problem is not None and "ConnectionRefusedError" in answer.problem


async def test_tcp_probe_connects(http_app: App) -> None:
    assert (await probe_app(AppProber(action="tcpSocket", port=http_app.port), LOCAL, {})).status == 200


async def test_https_probe_does_not_verify_the_certificate(tmp_path: Path) -> None:
    pki = write_test_pki(tmp_path)  # a certificate for client.example, by a root the agent does not know
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pki["cert"], pki["key"])
    async with running_app(tls) as app:
        answer = await probe_app(http(app.port, "/unavailable", scheme="HTTPS"), LOCAL, {})
    assert (answer.status, answer.body) == (503, b"warming up")


def _health_service(statuses: dict[bytes, bytes]) -> grpc.GenericRpcHandler:
    async def check(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if request not in statuses:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return statuses[request]

    handler = grpc.unary_unary_rpc_method_handler(check)  # bytes in, bytes out
    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": handler})


GRPC_ANSWERS = [
    # (id, service, status)
    ("overall-serving", "", 200),
    ("service-serving", "reviews", 200),
    ("service-not-serving", "ratings", 500),
    ("unknown-service", "details", 500),
]


@pytest.mark.parametrize(("service", "status"), [c[1:] for c in GRPC_ANSWERS], ids=[c[0] for c in GRPC_ANSWERS])
async def test_grpc_probe(service: str, status: int) -> None:
    server = grpc.aio.server()
    # HealthCheckRequest{service} -> HealthCheckResponse{status}: SERVING is 1, NOT_SERVING 2
    statuses = {b"": b"\x08\x01", b"\x0a\x07reviews": b"\x08\x01", b"\x0a\x07ratings": b"\x08\x02"}
    server.add_generic_rpc_handlers([_health_service(statuses)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        answer = await probe_app(AppProber(action="grpc", port=port, service=service), LOCAL, {})
    finally:
        await server.stop(None)
    assert answer.status == status, answer.problem


def _get(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, bytes(error.read())


async def test_status_server_routes(http_app: App) -> None:
    probers = {"/app-health/reviews/readyz": http(http_app.port, "/ok"),
               "/app-health/reviews/livez": http(http_app.port, "/unavailable")}  # fmt: skip
    envoy_admin = http_app.port  # an "admin" whose /ready is not a route of the app: 404, so not ready
    server = StatusServer(probers, LOCAL, host="127.0.0.1", port=0, admin_port=envoy_admin)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        ready, live, unknown, envoy = await asyncio.gather(
            *(asyncio.to_thread(_get, base + path) for path in
              ("/app-health/reviews/readyz", "/app-health/reviews/livez", "/app-health/other/readyz", "/healthz/ready"))
        )  # fmt: skip
    finally:
        await server.stop()
    assert ready == (200, b"fine") and live == (503, b"warming up")
    assert unknown[0] == 404
    assert envoy[0] == 503 and b"Envoy is not ready" in envoy[1]


PARSED = [
    # (id, JSON, path, prober)
    ("http", '{"/app-health/a/readyz":{"httpGet":{"path":"health","port":80,"scheme":"HTTPS","httpHeaders":'
     '[{"name":"Host","value":"a.local"},{"name":"X-A","value":"1"}]},"timeoutSeconds":3}}',
     "/app-health/a/readyz", AppProber(action="httpGet", port=80, path="/health", scheme="HTTPS",
                                       host_header="a.local", headers=(("X-A", "1"),), timeout_seconds=3)),
    ("tcp-default-timeout", '{"/app-health/a/livez":{"tcpSocket":{"port":81}}}', "/app-health/a/livez",
     AppProber(action="tcpSocket", port=81, timeout_seconds=1)),
    ("grpc", '{"/app-health/a/startupz":{"grpc":{"port":82,"service":"s"}}}', "/app-health/a/startupz",
     AppProber(action="grpc", port=82, service="s")),
    ("istio-lifecycle", '{"/app-lifecycle/a/prestopz":{"httpGet":{"port":83}}}', "/app-lifecycle/a/prestopz",
     AppProber(action="httpGet", port=83)),
]  # fmt: skip


@pytest.mark.parametrize(("text", "path", "prober"), [c[1:] for c in PARSED], ids=[c[0] for c in PARSED])
def test_probers_parsed(text: str, path: str, prober: AppProber) -> None:
    assert parse_app_probers(text) == {path: prober}


REFUSED = [
    # (id, JSON, message part)
    ("not-json", "{", "ISTIO_KUBE_APP_PROBERS: not JSON"),
    ("not-an-object", "[]", "a JSON object of probers by path"),
    ("bad-path", '{"/health":{"tcpSocket":{"port":1}}}', "['/health']: the path must match"),
    ("named-port", '{"/app-health/a/readyz":{"httpGet":{"port":"http"}}}', ".httpGet.port: a port number 1-65535"),
    ("two-actions", '{"/app-health/a/readyz":{"httpGet":{"port":1},"tcpSocket":{"port":1}}}',
     "exactly one of httpGet, tcpSocket or grpc"),
    ("bad-scheme", '{"/app-health/a/readyz":{"httpGet":{"port":1,"scheme":"FTP"}}}', ".scheme: HTTP or HTTPS"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_probers_refused(text: str, message: str) -> None:
    with pytest.raises(AppProbersError, match=None) as refused:
        parse_app_probers(text)
    assert message in str(refused.value)


def test_every_problem_at_once() -> None:
    text = '{"/x":{"tcpSocket":{"port":0}},"/app-health/a/readyz":{"grpc":{"port":"g"}}}'
    with pytest.raises(AppProbersError) as refused:
        parse_app_probers(text)
    assert str(refused.value).count(";") == 2, refused.value  # bad path, port 0, port "g"
