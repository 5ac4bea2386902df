"""Envoy bootstraps for meshplane sidecars, the Envoy binary, and a managed Envoy subprocess.

``build_sidecar_bootstrap`` says who the sidecar is and how to reach Pilot; ``find_envoy_binary`` finds Envoy;
``EnvoyProcess`` runs one. The ``envoy-bootstrap`` command (``envoy_bootstrap.cli``) wraps the first two.
"""

from envoy_bootstrap.binary import ENVOY_BIN_ENV, EnvoyNotFoundError, find_envoy_binary
from envoy_bootstrap.bootstrap import (
    DEFAULT_PILOT_ADDRESS,
    XDS_MODES,
    BootstrapError,
    XdsMode,
    bootstrap_to_json,
    build_sidecar_bootstrap,
    sidecar_node_id,
)
from envoy_bootstrap.runner import AdminResponse, EnvoyError, EnvoyExitedError, EnvoyProcess, EnvoyTimeoutError

__all__ = [
    "DEFAULT_PILOT_ADDRESS",
    "ENVOY_BIN_ENV",
    "XDS_MODES",
    "AdminResponse",
    "BootstrapError",
    "EnvoyError",
    "EnvoyExitedError",
    "EnvoyNotFoundError",
    "EnvoyProcess",
    "EnvoyTimeoutError",
    "XdsMode",
    "bootstrap_to_json",
    "build_sidecar_bootstrap",
    "find_envoy_binary",
    "sidecar_node_id",
]
