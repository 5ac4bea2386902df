"""Telemetry for Mixer: Envoy's gRPC HTTP access logger on a sidecar's HTTP connection managers.

For a sidecar whose bootstrap has the ``mixer`` cluster (node metadata ``MESHPLANE_MIXER: "true"``), every HTTP
connection manager gets one ``envoy.access_loggers.http_grpc`` logger streaming entries to Mixer's
AccessLogService (the role Istio's Mixer filter played for telemetry before telemetry v2):

- ``log_name`` ``meshplane`` (one stream per name per sidecar), gRPC to ``mixer``, v3 transport, entries flushed
  every 0.25 s (Envoy's default is 1 s: metrics and the graph should follow traffic closely);
- custom tags set by Pilot, as literals: ``reporter`` (``source`` on the outbound HCM, ``destination`` on inbound)
  and, inbound, ``destination_service`` = the FQDN of the service whose port the listener serves;
- request header ``content-type`` (tells gRPC from plain HTTP), response header and trailer ``grpc-status``
  (Istio's ``grpc_response_status``) and response ``content-type``.

Sidecars without the cluster get no logger: a reference to a cluster the sidecar does not have would be NACKed.
The logger config depends only on (reporter, destination service), so it is serialized once per pair and the same
bytes are packed for every proxy.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from envoy.config.accesslog.v3.accesslog_pb2 import AccessLog
from envoy.config.core.v3.config_source_pb2 import ApiVersion
from envoy.config.core.v3.grpc_service_pb2 import GrpcService
from envoy.extensions.access_loggers.grpc.v3.als_pb2 import CommonGrpcAccessLogConfig, HttpGrpcAccessLogConfig
from envoy.type.tracing.v3.custom_tag_pb2 import CustomTag
from google.protobuf.any_pb2 import Any as AnyProto

from meshplane import names
from meshplane.mixer_names import (
    ACCESS_LOG_NAME,
    MIXER_CLUSTER,
    MIXER_NODE_METADATA,
    REPORTER_DESTINATION,
    REPORTER_SOURCE,
    TAG_DESTINATION_SERVICE,
    TAG_REPORTER,
)
from pilot.model.types import Proxy, ServiceInstance

__all__ = [
    "BUFFER_FLUSH_INTERVAL_SECONDS",
    "REQUEST_HEADERS_TO_LOG",
    "RESPONSE_HEADERS_TO_LOG",
    "RESPONSE_TRAILERS_TO_LOG",
    "build_access_log_config",
    "build_inbound_access_logs",
    "build_outbound_access_logs",
    "has_mixer",
]

BUFFER_FLUSH_INTERVAL_SECONDS = 0.25
REQUEST_HEADERS_TO_LOG = ("content-type",)
RESPONSE_HEADERS_TO_LOG = ("content-type", "grpc-status")
RESPONSE_TRAILERS_TO_LOG = ("grpc-status",)

_CONFIG_TYPE_URL = "type.googleapis.com/" + HttpGrpcAccessLogConfig.DESCRIPTOR.full_name


def has_mixer(proxy: Proxy) -> bool:
    """Whether the proxy's bootstrap has the ``mixer`` cluster (``envoy-bootstrap --mixer``), so that its config may
    point ext_authz and access loggers at it."""
    return proxy.node.metadata.get(MIXER_NODE_METADATA) == "true"


def build_access_log_config(reporter: str, destination_service: str = "") -> HttpGrpcAccessLogConfig:
    """The logger's config (see the module doc); ``destination_service`` empty: no such tag (outbound)."""
    tags = [CustomTag(tag=TAG_REPORTER, literal=CustomTag.Literal(value=reporter))]
    if destination_service:
        tags.append(CustomTag(tag=TAG_DESTINATION_SERVICE, literal=CustomTag.Literal(value=destination_service)))
    return HttpGrpcAccessLogConfig(
        common_config=CommonGrpcAccessLogConfig(
            log_name=ACCESS_LOG_NAME,
            grpc_service=GrpcService(envoy_grpc=GrpcService.EnvoyGrpc(cluster_name=MIXER_CLUSTER)),
            transport_api_version=ApiVersion.V3,
            buffer_flush_interval=timedelta(seconds=BUFFER_FLUSH_INTERVAL_SECONDS),
            custom_tags=tags,
        ),
        additional_request_headers_to_log=list(REQUEST_HEADERS_TO_LOG),
        additional_response_headers_to_log=list(RESPONSE_HEADERS_TO_LOG),
        additional_response_trailers_to_log=list(RESPONSE_TRAILERS_TO_LOG),
    )


@lru_cache(maxsize=1024)
def _serialized_config(reporter: str, destination_service: str) -> bytes:
    serialized: bytes = build_access_log_config(reporter, destination_service).SerializeToString(deterministic=True)
    return serialized


def _access_log(reporter: str, destination_service: str = "") -> AccessLog:
    config = AnyProto(type_url=_CONFIG_TYPE_URL, value=_serialized_config(reporter, destination_service))
    return AccessLog(name=names.HTTP_GRPC_ACCESS_LOGGER, typed_config=config)


def build_outbound_access_logs(proxy: Proxy) -> tuple[AccessLog, ...]:
    """The outbound HTTP-proxy HCM's loggers: ``reporter=source``; none without the mixer cluster."""
    return (_access_log(REPORTER_SOURCE),) if has_mixer(proxy) else ()


def build_inbound_access_logs(proxy: Proxy, instance: ServiceInstance) -> tuple[AccessLog, ...]:
    """An inbound HCM's loggers: ``reporter=destination`` and the instance's service; none without the cluster."""
    if not has_mixer(proxy):
        return ()
    return (_access_log(REPORTER_DESTINATION, instance.service.host),)
