"""Telemetry to Mixer: the gRPC access logger on the inbound and outbound HTTP connection managers of sidecars
bootstrapped with ``--mixer``, its config field by field, the same bytes for every proxy, and nothing otherwise."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

import pytest
from envoy.config.accesslog.v3.accesslog_pb2 import AccessLog
from envoy.config.core.v3.config_source_pb2 import ApiVersion
from envoy.extensions.access_loggers.grpc.v3.als_pb2 import HttpGrpcAccessLogConfig
from envoy.type.tracing.v3.custom_tag_pb2 import CustomTag

from meshplane import names
from pilot.config.types import ConfigMeta, Protocol, WorkloadEntry
from pilot.generate import access_logs, filter_chains
from pilot.model import MeshSnapshot, build_snapshot
from tests.sidecar_builders import MIXER, inbound_service, listeners_by_port, only_hcm, sidecar

MakeMeta = Callable[..., ConfigMeta]


def mesh(make_meta: MakeMeta) -> MeshSnapshot:
    """Workloads a (127.0.0.21) and b (127.0.0.22) serve web (HTTP 9080 -> 19080) and db (TCP 5432 -> 15432)."""
    resources = (
        inbound_service(make_meta, "web", 9080, Protocol.HTTP, 19080, app="web"),
        inbound_service(make_meta, "db", 5432, Protocol.TCP, 15432, app="web"),
        *(
            WorkloadEntry(meta=make_meta("WorkloadEntry", n), address=a, labels=MappingProxyType({"app": "web"}))
            for n, a in (("a", "127.0.0.21"), ("b", "127.0.0.22"))
        ),
    )
    return build_snapshot({r.meta.key: r for r in resources}, version=1)


def config_of(log: AccessLog) -> HttpGrpcAccessLogConfig:
    assert log.name == names.HTTP_GRPC_ACCESS_LOGGER == "envoy.access_loggers.http_grpc"
    config = HttpGrpcAccessLogConfig()
    assert log.typed_config.Unpack(config)
    return config


def tags(config: HttpGrpcAccessLogConfig) -> dict[str, str]:
    return {tag.tag: tag.literal.value for tag in config.common_config.custom_tags}


def test_logger_config_streams_to_mixer() -> None:
    config = access_logs.build_access_log_config("destination", "web.default.svc.cluster.local")
    common = config.common_config
    assert common.log_name == "meshplane"
    assert common.grpc_service.envoy_grpc.cluster_name == "mixer"
    assert common.transport_api_version == ApiVersion.V3
    assert common.buffer_flush_interval.ToMilliseconds() == 250
    assert list(common.custom_tags) == [
        CustomTag(tag="reporter", literal=CustomTag.Literal(value="destination")),
        CustomTag(tag="destination_service", literal=CustomTag.Literal(value="web.default.svc.cluster.local")),
    ]
    assert list(config.additional_request_headers_to_log) == ["content-type"]
    assert list(config.additional_response_headers_to_log) == ["content-type", "grpc-status"]
    assert list(config.additional_response_trailers_to_log) == ["grpc-status"]


def test_inbound_and_outbound_hcms_log_to_mixer(make_meta: MakeMeta) -> None:
    snapshot = mesh(make_meta)
    built = listeners_by_port(sidecar(snapshot, "a", "127.0.0.21", MIXER), snapshot)
    [outbound] = only_hcm(built["outbound:9080"]).access_log
    assert tags(config_of(outbound)) == {"reporter": "source"}
    [inbound] = only_hcm(built["inbound:9080"]).access_log
    assert tags(config_of(inbound)) == {
        "reporter": "destination",
        "destination_service": "web.default.svc.cluster.local",
    }
    assert config_of(inbound) == access_logs.build_access_log_config("destination", "web.default.svc.cluster.local")
    [tcp] = built["inbound:5432"].filter_chains
    assert [f.name for f in tcp.filters] == [filter_chains.TCP_PROXY]  # telemetry is for HTTP connection managers


def test_no_logger_without_the_mixer_cluster(make_meta: MakeMeta) -> None:
    snapshot = mesh(make_meta)
    for metadata in (None, {"MESHPLANE_MIXER": "false"}):
        built = listeners_by_port(sidecar(snapshot, "a", "127.0.0.21", metadata), snapshot)
        assert [len(only_hcm(built[port]).access_log) for port in ("outbound:9080", "inbound:9080")] == [0, 0]


def test_every_proxy_gets_the_same_logger_bytes(make_meta: MakeMeta, monkeypatch: pytest.MonkeyPatch) -> None:
    """The config is built and serialized once per (reporter, service), whatever the number of proxies."""
    built_configs: list[tuple[str, str]] = []
    build = access_logs.build_access_log_config

    def counting(reporter: str, destination_service: str = "") -> HttpGrpcAccessLogConfig:
        built_configs.append((reporter, destination_service))
        return build(reporter, destination_service)

    monkeypatch.setattr(access_logs, "build_access_log_config", counting)
    access_logs._serialized_config.cache_clear()
    snapshot = mesh(make_meta)
    a = listeners_by_port(sidecar(snapshot, "a", "127.0.0.21", MIXER), snapshot)
    b = listeners_by_port(sidecar(snapshot, "b", "127.0.0.22", MIXER), snapshot)
    for port in ("outbound:9080", "inbound:9080"):
        [first], [second] = only_hcm(a[port]).access_log, only_hcm(b[port]).access_log
        assert first.SerializeToString(deterministic=True) == second.SerializeToString(deterministic=True)
    assert sorted(built_configs) == [("destination", "web.default.svc.cluster.local"), ("source", "")]
