"""Performing an app's original probe for the kubelet, as Istio's pilot-agent does (``status.handleAppProbe*``),
never blocking the event loop: the HTTP status (and at most 10 KiB of body) the kubelet gets back on the status port.

- ``httpGet``: a GET of the probe's path on the pod's own address and the probe's port (HTTPS without verifying the
  certificate, as the kubelet does), with the kubelet's request headers, the probe's ``httpHeaders`` and its
  ``Host`` (the kubelet's, its status port replaced by the probe's port); redirects to the same host are followed
  (at most 10), a redirect elsewhere or a 3xx not followed answers 200 (the kubelet counts both as success); any
  other status is answered as the app gave it; no answer within ``timeoutSeconds``, a refused or reset connection:
  500.
- ``tcpSocket``: a connection to the port within ``timeoutSeconds``: 200, else 500.
- ``grpc``: ``grpc.health.v1.Health/Check`` of the probe's service: ``SERVING`` 200, anything else 500.

The agent is uid 1337 (whose traffic the capture never redirects outbound), but a connection of the proxy's to the
pod's own address over loopback is sent to Envoy's inbound (Istio's rule for a pod calling itself through its
Service). So, as Istio's agent, HTTP and TCP probes bind ``127.0.0.6``, the source the capture lets through
(``agent.capture.INBOUND_PASSTHROUGH_SOURCE``). gRPC's client cannot choose its source address: gRPC probes go to
127.0.0.1 (Istio's legacy localhost destination), which the capture never redirects either."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import grpc
import structlog

from agent.app_probers import STATUS_PORT, AppProber
from agent.capture import INBOUND_PASSTHROUGH_SOURCE

__all__ = ["MAX_BODY_BYTES", "MAX_REDIRECTS", "ProbeAnswer", "ProbeTarget", "probe_app"]

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 10 * 1024  # Istio's maxRespBodyLength (the kubelet keeps as much for its events)
MAX_REDIRECTS = 10
_HEAD_LIMIT = 64 * 1024
# Never forwarded from the kubelet's request: hop-by-hop, the body's framing, and encodings the answer cannot undo
_NOT_FORWARDED = frozenset(
    {"host", "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
     "content-length", "accept-encoding"}
)  # fmt: skip
_GRPC_SERVING = 1  # grpc.health.v1.HealthCheckResponse.SERVING


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeTarget:
    """Where the app is: the pod's address, and the source address HTTP and TCP probes bind."""

    address: str
    source: str | None = INBOUND_PASSTHROUGH_SOURCE
    grpc_address: str = "127.0.0.1"
    status_port: int = STATUS_PORT


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeAnswer:
    status: int
    body: bytes = b""
    problem: str | None = None  # why the probe failed without an answer of the app's (logged, not sent)


def _insecure_tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the kubelet does not verify an HTTPS probe's certificate either
    context.set_alpn_protocols(["http/1.1"])
    return context


def _host_header(prober: AppProber, target: ProbeTarget, incoming: str | None) -> str:
    """The probe's own Host, else the kubelet's with the status port replaced by the app's, else address:port."""
    if prober.host_header is not None:
        return prober.host_header
    if incoming:
        host, sep, port = incoming.rpartition(":")
        if sep and port == str(target.status_port):
            return f"{host}:{prober.port}"
        return incoming
    return f"{target.address}:{prober.port}"


def _request_head(path: str, host: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode("latin-1")


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP response: {status_line[:80]!r}")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
    """At most ``MAX_BODY_BYTES`` of a body with a length, or up to the close (nothing of a chunked one)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return b""
    length = headers.get("content-length", "")
    wanted = min(int(length), MAX_BODY_BYTES) if length.isdigit() else MAX_BODY_BYTES
    body = b""
    while len(body) < wanted:
        chunk = await reader.read(wanted - len(body))
        if not chunk:
            break
        body += chunk
    return body


async def _get(url: str, host: str, headers: Mapping[str, str], source: str | None) -> tuple[int, str, bytes]:
    """One GET of ``url``: (status, Location, body)."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    reader, writer = await asyncio.open_connection(
        parts.hostname,
        parts.port or (443 if https else 80),
        ssl=_insecure_tls() if https else None,
        server_hostname="" if https else None,
        local_addr=(source, 0) if source else None,
        limit=_HEAD_LIMIT,
    )
    try:
        writer.write(_request_head(parts.path + (f"?{parts.query}" if parts.query else ""), host, headers))
        await writer.drain()
        status, response_headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
        return status, response_headers.get("location", ""), await _read_body(reader, response_headers)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def _forwarded(prober: AppProber, incoming: Mapping[str, str]) -> dict[str, str]:
    headers = {name: value for name, value in incoming.items() if name.lower() not in _NOT_FORWARDED}
    lowered = {name.lower(): name for name in headers}
    for name, value in prober.headers:  # the probe's httpHeaders win over the kubelet's copy of them
        headers.pop(lowered.get(name.lower(), name), None)
        headers[name] = value
    return headers


async def _http_probe(prober: AppProber, target: ProbeTarget, incoming: Mapping[str, str]) -> ProbeAnswer:
    scheme = prober.scheme.lower()
    url = f"{scheme}://{target.address}:{prober.port}{prober.path}"
    host = _host_header(prober, target, incoming.get("host"))
    headers = _forwarded(prober, incoming)
    for _ in range(MAX_REDIRECTS + 1):
        status, location, body = await _get(url, host, headers, target.source)
        if not 300 <= status < 400:
            return ProbeAnswer(status=status, body=body)
        following = urljoin(url, location) if location else ""
        if not following or urlsplit(following).hostname != urlsplit(url).hostname:
            return ProbeAnswer(status=200)  # a redirect elsewhere (or none given): the kubelet's success
        url = following
    return ProbeAnswer(status=500, problem=f"stopped after {MAX_REDIRECTS} redirects")


async def _tcp_probe(prober: AppProber, target: ProbeTarget) -> ProbeAnswer:
    local = (target.source, 0) if target.source else None
    _, writer = await asyncio.open_connection(target.address, prober.port, local_addr=local)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeAnswer(status=200)


def _health_request(service: str) -> bytes:
    """``HealthCheckRequest{service}`` encoded (field 1, length-delimited)."""
    data = service.encode("utf-8")
    if not data:
        return b""
    length, prefix = len(data), bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        prefix.append(byte | (0x80 if length else 0))
        if not length:
            return b"\x0a" + bytes(prefix) + data


def _health_status(data: bytes) -> int:
    """``HealthCheckResponse.status`` (field 1, varint; UNKNOWN when absent): the only field of the message."""
    if len(data) >= 2 and data[0] == 0x08:
        return data[1] & 0x7F
    return 0


async def _grpc_probe(prober: AppProber, target: ProbeTarget, incoming: Mapping[str, str]) -> ProbeAnswer:
    agent = incoming.get("user-agent")
    options = [("grpc.primary_user_agent", agent)] if agent else []
    async with grpc.aio.insecure_channel(f"{target.grpc_address}:{prober.port}", options=options) as channel:
        check: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/grpc.health.v1.Health/Check")
        try:
            response: bytes = await check(_health_request(prober.service), timeout=prober.timeout_seconds)
        except grpc.aio.AioRpcError as exc:
            return ProbeAnswer(status=500, problem=f"grpc probe failed: {exc.code().name}: {exc.details()}")
    status = _health_status(response)
    if status == _GRPC_SERVING:
        return ProbeAnswer(status=200)
    return ProbeAnswer(status=500, problem=f"grpc health status {status}, not SERVING")


async def probe_app(prober: AppProber, target: ProbeTarget, incoming: Mapping[str, str]) -> ProbeAnswer:
    """Perform ``prober`` against the app; ``incoming``: the kubelet's request headers (names in any case)."""
    try:
        async with asyncio.timeout(prober.timeout_seconds):
            if prober.action == "httpGet":
                return await _http_probe(prober, target, incoming)
            if prober.action == "tcpSocket":
                return await _tcp_probe(prober, target)
            return await _grpc_probe(prober, target, incoming)
    except TimeoutError:
        return ProbeAnswer(status=500, problem=f"no answer within {prober.timeout_seconds} s")
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        return ProbeAnswer(status=500, problem=f"{type(exc).__name__}: {exc}")
