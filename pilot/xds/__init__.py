"""The xDS protocol: per-stream state, ACK/NACK, SotW + delta, debounced pushes, the grpc.aio ADS server."""

from pilot.xds.cache import ResourceCache
from pilot.xds.changes import ResourceChanges
from pilot.xds.connection import Connection, Mode, SendTimeoutError, short_type
from pilot.xds.consistency import InconsistentSnapshotError
from pilot.xds.plan import DeltaResponse, SotwResponse, plan_delta, plan_sotw
from pilot.xds.pushes import Debouncer, build_cache
from pilot.xds.resources import ProxyResources, Resource, ResourceGroup, make_resource, resource_name
from pilot.xds.server import ADS_SERVICE, DiscoveryServer
from pilot.xds.watch import WILDCARD, Nack, WatchedResource, should_respond, should_respond_delta

__all__ = [
    "ADS_SERVICE",
    "WILDCARD",
    "Connection",
    "Debouncer",
    "DeltaResponse",
    "DiscoveryServer",
    "InconsistentSnapshotError",
    "Mode",
    "Nack",
    "ProxyResources",
    "Resource",
    "ResourceCache",
    "ResourceChanges",
    "ResourceGroup",
    "SendTimeoutError",
    "SotwResponse",
    "WatchedResource",
    "build_cache",
    "make_resource",
    "plan_delta",
    "plan_sotw",
    "resource_name",
    "short_type",
    "should_respond",
    "should_respond_delta",
]
