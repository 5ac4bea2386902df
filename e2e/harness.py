"""Host-side helpers of the scenarios and the demo: the control plane's ports (Pilot, Citadel and Mixer share one
address, as in Istio's istiod), whether a port is free, and a free loopback ``/24`` of 127.0.0.0/8 for a control
plane of its own, so that concurrent scenarios never collide on ports."""

from __future__ import annotations

import random
import socket

__all__ = [
    "CITADEL_HOST",
    "CITADEL_MONITOR_PORT",
    "CITADEL_SDS_PORT",
    "MIXER_GRPC_PORT",
    "MIXER_HOST",
    "MIXER_MONITOR_PORT",
    "MONITOR_PORT",
    "PILOT_HOST",
    "XDS_PORT",
    "find_free_subnet",
    "port_free",
]

PILOT_HOST = 1  # Pilot listens on <subnet>.1
XDS_PORT = 15010
MONITOR_PORT = 15014
CITADEL_HOST = PILOT_HOST  # Citadel (when the mesh has one) shares Pilot's address, as in Istio's istiod
CITADEL_SDS_PORT = 15012
CITADEL_MONITOR_PORT = 15019
MIXER_HOST = PILOT_HOST  # Mixer (when the mesh has one) shares Pilot's address too
MIXER_GRPC_PORT = 9091  # Istio Mixer's gRPC port: ext_authz checks and access logs
MIXER_MONITOR_PORT = 42422  # Istio Mixer's Prometheus port: /metrics, /graph
_POLL_INTERVAL_SECONDS = 0.1


def port_free(address: str, port: int) -> bool:
    """Whether a listener could bind ``address:port`` now (with SO_REUSEADDR, as Envoy and aiohttp do, so that
    connections in TIME_WAIT from an earlier run do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def find_free_subnet(attempts: int = 50) -> str:
    """A random ``127.X.Y`` whose Pilot ports are free: a fresh subnet per test, so meshes never share ports."""
    for _ in range(attempts):
        subnet = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}"
        pilot = f"{subnet}.{PILOT_HOST}"
        if port_free(pilot, XDS_PORT) and port_free(pilot, MONITOR_PORT):
            return subnet
    raise RuntimeError(f"no free loopback subnet found in {attempts} attempts")
