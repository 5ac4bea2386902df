"""Pilot's ADS: the snapshot cache of generated resources, debounced pushes, and the grpc.aio server, over the
shared xDS protocol core (``xdscore``: per-stream state, ACK/NACK, SotW + delta planning, the stream loop)."""

from pilot.xds.cache import ResourceCache
from pilot.xds.connection import Connection, Mode, SendTimeoutError, short_type
from pilot.xds.consistency import InconsistentSnapshotError
from pilot.xds.pushes import Debouncer, build_cache
from pilot.xds.server import ADS_SERVICE, DiscoveryServer

__all__ = [
    "ADS_SERVICE",
    "Connection",
    "Debouncer",
    "DiscoveryServer",
    "InconsistentSnapshotError",
    "Mode",
    "ResourceCache",
    "SendTimeoutError",
    "build_cache",
    "short_type",
]
