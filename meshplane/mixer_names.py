"""Names Pilot, envoy_bootstrap and Mixer agree on, written once.

A sidecar bootstrapped with ``--mixer HOST:PORT`` has a static cluster ``mixer`` (HTTP/2, gRPC) and says
``MESHPLANE_MIXER: "true"`` in its node metadata; only then does Pilot point ext_authz filters and gRPC access
loggers at that cluster (a reference to a cluster the sidecar does not have would be NACKed).
"""

from __future__ import annotations

__all__ = [
    "ACCESS_LOG_NAME",
    "DEFAULT_GRPC_ADDRESS",
    "DEFAULT_MONITOR_ADDRESS",
    "MIXER_CLUSTER",
    "MIXER_NODE_METADATA",
    "REASON_HEADER",
    "REPORTER_DESTINATION",
    "REPORTER_SOURCE",
    "TAG_DESTINATION_SERVICE",
    "TAG_REPORTER",
]

MIXER_CLUSTER = "mixer"  # the bootstrap cluster pointing at Mixer's gRPC address
MIXER_NODE_METADATA = "MESHPLANE_MIXER"  # node metadata key a bootstrap sets ("true") when it has that cluster
DEFAULT_GRPC_ADDRESS = "127.0.0.1:9091"  # Mixer's ext_authz + access-log gRPC server (Istio Mixer's 9091)
DEFAULT_MONITOR_ADDRESS = "127.0.0.1:42422"  # /ready, /metrics, /graph (Istio Mixer's Prometheus port)
REASON_HEADER = "x-mixer-reason"  # on every denial Mixer answers: why, readable by the caller
ACCESS_LOG_NAME = "meshplane"  # the gRPC access log's log_name (one stream per name per sidecar)
# Access-log custom tags (literal values set by Pilot per HTTP connection manager)
TAG_REPORTER = "reporter"  # "source" on the outbound side, "destination" on the inbound side
TAG_DESTINATION_SERVICE = "destination_service"  # inbound: the FQDN of the service the listener's port belongs to
REPORTER_SOURCE = "source"
REPORTER_DESTINATION = "destination"
