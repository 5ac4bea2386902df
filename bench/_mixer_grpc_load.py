"""Mixer's gRPC throughput for the Mixer benchmark (``bench.mixer_policy``): ext_authz checks per second and
access-log entries per second, against a Mixer in its own process (``start_standalone_mixer``), from this process.

Checks: ``concurrency`` coroutines over ``channels`` gRPC channels, each calling
``envoy.service.auth.v3.Authorization/Check`` back to back with a CheckRequest as Envoy's ext_authz filter sends it
for productpage -> reviews-v1:9080 (the peers at the demo's pod IPs, the destination at its original destination
pod IP:9080 as the inbound capture delivers it; HTTP method, path, host, scheme, protocol, request id and the
headers Envoy forwards, ``end-user`` among them). The requests are serialized once beforehand, so the client spends
its CPU on gRPC only. Every check evaluates the AccessList and the RateLimit selecting reviews and is allowed. The
same load drives the reference stand-in (any ``CheckServer``), so the two are compared per CPU-second.

Access logs: ``streams`` client streams of ``envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs``, each as
one sidecar's ``http_grpc`` logger (reviews-v1, -v2, -v3 in turn): the identifier (node id, log name) on the first
message only, then batches of ``batch`` inbound entries (``reporter=destination``, ``destination_service``, the
downstream peer at productpage's pod IP, the local address and the app at the sidecar's pod IP:9080), written back
to back (the throughput run) or paced at an offered rate (``offered`` entries/s in all) for ``seconds``; the rates
are counted between two scrapes of the server's /metrics. gRPC accepts writes well beyond what the server has read
(it buffers them), so "written" overstates what reached it; "received" (``mixer_log_entries_total``) is what it
read, and "unread" what it had still not read a second after the senders stopped (Envoy's logger drops entries a
stream does not take, uncounted). Mixer never pushes back on a stream (Envoy's logger never waits either): what its
queue cannot hold is dropped and counted, so "received" and "processed" differ when the sender is faster than
Mixer's pipeline. The same load drives the stand-in (``STANDIN_LOG_COUNTERS``: it only parses and counts).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.core.v3.base_pb2 import Node, RequestMethod
from envoy.data.accesslog.v3.accesslog_pb2 import (
    AccessLogCommon,
    HTTPAccessLogEntry,
    HTTPRequestProperties,
    HTTPResponseProperties,
)
from envoy.service.accesslog.v3.als_pb2 import StreamAccessLogsMessage, StreamAccessLogsResponse
from envoy.service.auth.v3.attribute_context_pb2 import AttributeContext
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest, CheckResponse
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.protobuf.wrappers_pb2 import UInt32Value
from google.rpc import code_pb2

from bench._measure import Latencies, cpu_seconds, sample_sum
from e2e.mesh_config import DEMO_CLIENT, DEMO_HOST, DEMO_WORKLOADS, REVIEWS_PORT, demo_pod_addresses
from envoy_bootstrap import sidecar_node_id
from meshplane.mixer_names import ACCESS_LOG_NAME, REPORTER_DESTINATION, TAG_DESTINATION_SERVICE, TAG_REPORTER
from pilot.config.hosts import DEFAULT_DOMAIN_SUFFIX

__all__ = [
    "MIXER_LOG_COUNTERS",
    "STANDIN_LOG_COUNTERS",
    "AccessLogResult",
    "CheckResult",
    "CheckServer",
    "LogCounters",
    "run_access_logs",
    "run_checks",
    "run_checks_in_turn",
    "run_quota_exactness",
]

_CHECK_METHOD = "/envoy.service.auth.v3.Authorization/Check"
_ACCESS_LOG_METHOD = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs"
_USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
_REVIEWS = [spec for spec in DEMO_WORKLOADS if spec.service == "reviews"]
_POD_IPS = demo_pod_addresses()  # the demo's pod IPs (10.89.0.x), as the demo mesh's registry has them
_PRODUCTPAGE_IP = _POD_IPS[DEMO_CLIENT.name]
_RPC_TIMEOUT_SECONDS = 10.0


class CheckServer(Protocol):
    """What the checks load needs of the server it drives: Mixer (``MixerProcess``) or the stand-in."""

    @property
    def grpc_address(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    async def metrics_text(self) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    channels: int
    concurrency: int
    seconds: float
    checks: int
    outcomes: Mapping[str, int]  # of every check, unloaded ones too: "OK", "PERMISSION_DENIED", or "rpc <code>"
    latencies: Latencies
    mixer_cpu: float  # the server's CPU seconds while measuring (Mixer's, or the stand-in's)
    client_cpu: float  # this process's CPU seconds while measuring
    mixer_evaluation_mean: float  # seconds, Mixer's own mixer_check_duration_seconds (sum / count)
    unloaded: Latencies  # one check in flight at a time, after the loaded run

    @property
    def per_second(self) -> float:
        return self.checks / self.seconds

    @property
    def per_cpu_second(self) -> float:
        """Checks answered per second of the server's CPU: the cost per check, comparable across runs' loads."""
        return self.checks / self.mixer_cpu if self.mixer_cpu > 0 else float("nan")


@dataclass(frozen=True, slots=True, kw_only=True)
class LogCounters:
    """The counters of a log server's /metrics the access-log load reads: entries read off the streams, entries
    turned into metrics (summed over series) and entries dropped (by ``reason``; empty: it drops none)."""

    received: str
    processed: str
    dropped: str = ""


MIXER_LOG_COUNTERS = LogCounters(
    received="mixer_log_entries_total", processed="istio_requests_total", dropped="mixer_log_entries_dropped_total"
)
STANDIN_LOG_COUNTERS = LogCounters(received="limit_log_entries_total", processed="limit_log_entries_total")
_DROP_REASONS = ("queue_full", "unparsable")


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessLogResult:
    streams: int
    batch: int
    offered: float | None  # entries/s the senders were paced at; None: as fast as gRPC takes writes
    seconds: float  # the measured window, between two scrapes of the server's /metrics, the senders busy throughout
    sent: int  # entries whose write returned within the window (gRPC takes writes beyond what Mixer has read)
    received: int  # read by the server over the window (mixer_log_entries_total)
    processed: int  # turned into metrics over the window (istio_requests_total, summed over its series)
    dropped: Mapping[str, int]  # mixer_log_entries_dropped_total by reason, the window and the backlog's time
    mixer_cpu: float  # the server's CPU seconds over the window
    unread: int  # written by the senders and never read by the server, once they stopped (Envoy would drop those)
    backlog_seconds: float  # after the window, with the senders stopped: until every received entry was processed
    backlog_complete: bool  # False: still not worked off after the drain timeout
    processed_total: int  # everything processed by the end of the backlog (the window's entries and its backlog)
    cpu_total: float  # the server's CPU seconds from the window's start to the backlog's end

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def per_cpu_second(self) -> float:
        """Entries turned into metrics per second of the server's CPU, the backlog's work included."""
        return self.processed_total / self.cpu_total if self.cpu_total > 0 else float("nan")


def _connection(address: str) -> grpc.aio.Channel:
    """A channel with a TCP connection of its own: channels to one address share their subchannels (one connection)
    unless each has its own pool, and connections are what the kernel spreads between processes on one port."""
    return grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def server_cpu(server: CheckServer) -> float:
    """CPU seconds of the server's process, or of all its processes (a ``pids`` attribute: several on one port)."""
    pids: Sequence[int | None] = getattr(server, "pids", None) or (server.pid,)
    return sum(cpu_seconds(pid) for pid in pids)


def _address(ip: str, port: int) -> Address:
    return Address(socket_address=SocketAddress(address=ip, port_value=port))


def check_request(*, index: int, destination_ip: str, extra_headers: Mapping[str, str] | None = None) -> CheckRequest:
    """A CheckRequest as the inbound ext_authz filter of reviews' sidecar sends it for productpage's request."""
    user = _USERS[index % len(_USERS)]
    request_id = f"bench-{index:08d}-0000-4000-8000-000000000000"
    path = f"/reviews/{index % 100}"
    headers = {
        ":authority": f"{DEMO_HOST}:{REVIEWS_PORT}",
        ":method": "GET",
        ":path": path,
        ":scheme": "http",
        "accept": "*/*",
        "end-user": user,
        "user-agent": "Python/3.11 aiohttp/3",
        "x-forwarded-proto": "http",
        "x-request-id": request_id,
        "x-envoy-expected-rq-timeout-ms": "15000",
        **(extra_headers or {}),
    }
    return CheckRequest(
        attributes=AttributeContext(
            source=AttributeContext.Peer(address=_address(_PRODUCTPAGE_IP, 40000 + index % 20000)),
            destination=AttributeContext.Peer(address=_address(destination_ip, REVIEWS_PORT)),
            request=AttributeContext.Request(
                time=Timestamp(seconds=int(time.time())),
                http=AttributeContext.HttpRequest(
                    id=request_id,
                    method="GET",
                    headers=headers,
                    path=path,
                    host=f"{DEMO_HOST}:{REVIEWS_PORT}",
                    scheme="http",
                    protocol="HTTP/1.1",
                ),
            ),
        )
    )


@dataclass(slots=True)
class _CheckSamples:
    """What the checks load measured of one server, summed over its rounds."""

    latencies: list[float] = field(default_factory=list)
    unloaded: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    evaluated: float = 0.0  # mixer_check_duration_seconds_count over the windows
    evaluation_seconds: float = 0.0  # and its sum

    def result(self, *, channels: int, concurrency: int) -> CheckResult:
        return CheckResult(
            channels=channels,
            concurrency=concurrency,
            seconds=self.seconds,
            checks=len(self.latencies),
            outcomes=dict(self.outcomes),
            latencies=Latencies.of(self.latencies),
            mixer_cpu=self.server_cpu,
            client_cpu=self.client_cpu,
            mixer_evaluation_mean=self.evaluation_seconds / self.evaluated if self.evaluated else float("nan"),
            unloaded=Latencies.of(self.unloaded),
        )


async def _drive_checks(
    server: CheckServer, into: _CheckSamples, *, seconds: float, channels: int, concurrency: int, unloaded: bool
) -> None:
    """One window of the checks load against ``server`` (after a warm-up), added to ``into``; then, if
    ``unloaded``, checks one at a time."""
    destination = _POD_IPS[_REVIEWS[0].name]
    requests = [check_request(index=i, destination_ip=destination).SerializeToString() for i in range(256)]
    opened = [_connection(server.grpc_address) for _ in range(channels)]
    calls: list[grpc.aio.UnaryUnaryMultiCallable[bytes, CheckResponse]] = [
        channel.unary_unary(_CHECK_METHOD, request_serializer=None, response_deserializer=CheckResponse.FromString)
        for channel in opened
    ]

    async def worker(number: int, until: float, latencies: list[float], answers: Counter[str]) -> None:
        """Checks back to back until ``until``: latencies into ``latencies``, outcomes counted in ``answers``."""
        call = calls[number % len(calls)]
        index = number
        while time.perf_counter() < until:
            request = requests[index % len(requests)]
            index += concurrency
            started = time.perf_counter()
            try:
                response = await call(request, timeout=_RPC_TIMEOUT_SECONDS)
            except grpc.aio.AioRpcError as exc:
                outcome = f"rpc {exc.code().name}"
            else:
                outcome = code_pb2.Code.Name(response.status.code)
            latencies.append(time.perf_counter() - started)
            answers[outcome] += 1

    try:
        warmup_until = time.perf_counter() + min(1.0, seconds / 5)
        await asyncio.gather(*(worker(n, warmup_until, [], Counter()) for n in range(concurrency)))
        before_text = await server.metrics_text()
        cpu_before, started = server_cpu(server), time.perf_counter()
        client_before = time.process_time()
        await asyncio.gather(*(worker(n, started + seconds, into.latencies, into.outcomes) for n in range(concurrency)))
        into.seconds += time.perf_counter() - started
        into.server_cpu += server_cpu(server) - cpu_before
        into.client_cpu += time.process_time() - client_before
        after_text = await server.metrics_text()
        if unloaded:
            await worker(0, time.perf_counter() + min(1.0, seconds / 5), into.unloaded, into.outcomes)
    finally:
        for channel in opened:
            await channel.close()
    for name in ("count", "sum"):
        delta = sample_sum(after_text, f"mixer_check_duration_seconds_{name}") - sample_sum(
            before_text, f"mixer_check_duration_seconds_{name}"
        )
        if name == "count":
            into.evaluated += delta
        else:
            into.evaluation_seconds += delta


async def run_checks(server: CheckServer, *, seconds: float, channels: int, concurrency: int) -> CheckResult:
    """The checks load against ``server`` for ``seconds``, then one check at a time."""
    (result,) = await run_checks_in_turn(
        (server,), rounds=1, seconds=seconds, channels=channels, concurrency=concurrency
    )
    return result


async def run_checks_in_turn(
    servers: Sequence[CheckServer], *, rounds: int, seconds: float, channels: int, concurrency: int
) -> list[CheckResult]:
    """The checks load against each of ``servers`` in turn, ``rounds`` times for ``seconds / rounds`` each; each
    server's result sums its rounds. On a machine shared with other work, a change in that work during the run
    then falls on every server alike, not on whichever ran at the time (the ratio between them is what counts)."""
    samples = [_CheckSamples() for _ in servers]
    for round_ in range(rounds):
        for server, into in zip(servers, samples, strict=True):
            await _drive_checks(
                server,
                into,
                seconds=seconds / rounds,
                channels=channels,
                concurrency=concurrency,
                unloaded=round_ == rounds - 1,
            )
    return [into.result(channels=channels, concurrency=concurrency) for into in samples]


async def run_quota_exactness(
    server: CheckServer, *, header: str, bucket: str, checks: int, channels: int, concurrency: int
) -> Counter[str]:
    """``checks`` checks carrying ``header: bucket`` (one RateLimit bucket), ``concurrency`` in flight over
    ``channels`` connections: the answers by code (``OK``, ``RESOURCE_EXHAUSTED`` for a 429, ...)."""
    destination = _POD_IPS[_REVIEWS[0].name]
    requests = [
        check_request(index=i, destination_ip=destination, extra_headers={header: bucket}).SerializeToString()
        for i in range(min(checks, 256))
    ]
    opened = [_connection(server.grpc_address) for _ in range(channels)]
    answers: Counter[str] = Counter()
    remaining = iter(range(checks))

    async def worker(number: int) -> None:
        call = opened[number % channels].unary_unary(
            _CHECK_METHOD, request_serializer=None, response_deserializer=CheckResponse.FromString
        )
        for index in remaining:
            try:
                response = await call(requests[index % len(requests)], timeout=_RPC_TIMEOUT_SECONDS)
            except grpc.aio.AioRpcError as exc:
                answers[f"rpc {exc.code().name}"] += 1
            else:
                answers[code_pb2.Code.Name(response.status.code)] += 1

    try:
        await asyncio.gather(*(worker(number) for number in range(concurrency)))
    finally:
        for channel in opened:
            await channel.close()
    return answers


def _log_entry(index: int, local_ip: str) -> HTTPAccessLogEntry:
    """An inbound entry of a reviews sidecar: productpage's request, 1 in 20 answered 503."""
    duration_ms = 2 + index % 23
    code = 503 if index % 20 == 19 else 200
    return HTTPAccessLogEntry(
        common_properties=AccessLogCommon(
            downstream_remote_address=_address(_PRODUCTPAGE_IP, 40000 + index),
            downstream_local_address=_address(local_ip, REVIEWS_PORT),
            upstream_remote_address=_address(local_ip, REVIEWS_PORT),  # inbound|9080||: the app at pod IP:9080
            upstream_cluster=f"inbound|{REVIEWS_PORT}||",
            custom_tags={TAG_REPORTER: REPORTER_DESTINATION, TAG_DESTINATION_SERVICE: DEMO_HOST},
            start_time=Timestamp(seconds=int(time.time()), nanos=index * 1000),
            time_to_last_downstream_tx_byte=Duration(nanos=duration_ms * 1_000_000),
            duration=Duration(nanos=duration_ms * 1_000_000),
        ),
        protocol_version=HTTPAccessLogEntry.HTTP11,
        request=HTTPRequestProperties(
            request_method=RequestMethod.GET,
            scheme="http",
            authority=f"{DEMO_HOST}:{REVIEWS_PORT}",
            path=f"/reviews/{index}",
            user_agent="Python/3.11 aiohttp/3",
            request_id=f"bench-log-{index:08d}",
            request_headers_bytes=180,
            request_body_bytes=0,
        ),
        response=HTTPResponseProperties(
            response_code=UInt32Value(value=code),
            response_headers_bytes=120,
            response_body_bytes=310,
        ),
    )


def _stream_messages(stream: int, batch: int) -> tuple[bytes, bytes]:
    """The serialized first message (identifier + a batch) and every later one (a batch) of one sidecar's stream."""
    workload = _REVIEWS[stream % len(_REVIEWS)]
    ip = _POD_IPS[workload.name]
    node_id = sidecar_node_id(
        workload=workload.name, namespace=workload.namespace, address=ip, domain_suffix=DEFAULT_DOMAIN_SUFFIX
    )
    later = StreamAccessLogsMessage()
    later.http_logs.log_entry.extend(_log_entry(i, ip) for i in range(batch))
    first = StreamAccessLogsMessage()
    first.CopyFrom(later)
    first.identifier.node.CopyFrom(Node(id=node_id, cluster=f"{workload.name}.{workload.namespace}"))
    first.identifier.log_name = ACCESS_LOG_NAME
    return first.SerializeToString(), later.SerializeToString()


async def run_access_logs(
    server: CheckServer,
    *,
    seconds: float,
    streams: int,
    batch: int,
    offered: float | None = None,
    counters: LogCounters = MIXER_LOG_COUNTERS,
    drain_timeout: float = 30.0,
) -> AccessLogResult:
    """``streams`` sidecars' access-log streams against ``server`` for ``seconds``: as fast as gRPC takes writes, or
    paced at ``offered`` entries/s in all (each stream a batch every ``streams * batch / offered`` seconds, open
    loop, as Envoy's loggers flush on their own clocks). Then the senders stop, still connected: what the server
    has not read a second later is ``unread``; the backlog is timed until worked off, and the streams end."""
    messages = [_stream_messages(stream, batch) for stream in range(streams)]
    opened = [_connection(server.grpc_address) for _ in range(streams)]  # one connection per sidecar
    calls: list[grpc.aio.StreamUnaryCall[bytes, StreamAccessLogsResponse]] = []
    sent_at: list[float] = []  # when each batch's write returned
    stop_sending = asyncio.Event()
    interval = streams * batch / offered if offered else 0.0

    async def sender(number: int) -> None:
        method: grpc.aio.StreamUnaryMultiCallable[bytes, StreamAccessLogsResponse] = opened[number].stream_unary(
            _ACCESS_LOG_METHOD,
            request_serializer=None,
            response_deserializer=StreamAccessLogsResponse.FromString,
        )
        call = method()
        calls.append(call)
        first, later = messages[number]
        message = first
        due = time.perf_counter() + interval * number / streams  # the streams' flushes spread over an interval
        while not stop_sending.is_set():
            if interval:
                if (wait := due - time.perf_counter()) > 0:
                    await asyncio.sleep(wait)
                due += interval
            await call.write(message)
            sent_at.append(time.perf_counter())
            message = later

    def delta(text: str, name: str, **labels: str) -> int:
        return round(sample_sum(text, name, **labels) - sample_sum(before, name, **labels))

    def dropped(text: str) -> dict[str, int]:
        if not counters.dropped:
            return {}
        return {reason: delta(text, counters.dropped, reason=reason) for reason in _DROP_REASONS}

    senders: list[asyncio.Task[None]] = []
    try:
        before = await server.metrics_text()
        started, cpu_before = time.perf_counter(), server_cpu(server)
        senders = [asyncio.create_task(sender(n)) for n in range(streams)]
        await asyncio.sleep(seconds)
        cpu_after = server_cpu(server)
        after = await server.metrics_text()
        ended = time.perf_counter()
        stop_sending.set()
        await asyncio.wait(senders, timeout=5.0)
        written = len(sent_at) * batch
        text = after
        read_by = time.perf_counter() + 1.0
        while delta(text, counters.received) < written and time.perf_counter() < read_by:
            await asyncio.sleep(0.05)
            text = await server.metrics_text()
        unread = max(0, written - delta(text, counters.received))
        deadline = ended + drain_timeout
        while (backlog := delta(text, counters.received) - delta(text, counters.processed)) > sum(
            dropped(text).values()
        ):
            if time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.05)
            text = await server.metrics_text()
        backlog_seconds = time.perf_counter() - ended
        cpu_end = server_cpu(server)
    finally:
        for call in calls:
            call.cancel()  # as a sidecar going away
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        for channel in opened:
            await channel.close()
    return AccessLogResult(
        streams=streams,
        batch=batch,
        offered=offered,
        seconds=ended - started,
        sent=sum(started <= at <= ended for at in sent_at) * batch,
        received=delta(after, counters.received),
        processed=delta(after, counters.processed),
        dropped=dropped(text),
        mixer_cpu=cpu_after - cpu_before,
        unread=unread,
        backlog_seconds=backlog_seconds,
        backlog_complete=backlog <= sum(dropped(text).values()),
        processed_total=delta(text, counters.processed),
        cpu_total=cpu_end - cpu_before,
    )
