"""Helpers for the mutual-TLS scenarios: Istio security YAML, the caller's identity, what a sidecar's Envoy holds."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from e2e.traffic import MeshResponse

__all__ = ["caller_identity", "certificates_in", "peer_authentication", "xfcc_identity"]


def caller_identity(response: MeshResponse) -> str | None:
    """The caller's URI SAN that the server's sidecar put in ``x-forwarded-client-cert``, as the app saw it."""
    return xfcc_identity(response.request_headers.get("x-forwarded-client-cert"))


def xfcc_identity(xfcc: str | None) -> str | None:
    """The URI SAN of an ``x-forwarded-client-cert`` value (None: no header, or no URI in it)."""
    if xfcc is None:
        return None
    fields = dict(part.split("=", 1) for part in xfcc.split(";") if "=" in part)
    return unquote(fields.get("URI", "").strip('"')) or None


def peer_authentication(mode: str, *, namespace: str = "default", name: str = "default") -> str:
    """A PeerAuthentication for a whole namespace (``istio-system``: the whole mesh)."""
    return (
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        f"metadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"spec:\n  mtls:\n    mode: {mode}\n"
    )


def certificates_in(certs: dict[str, Any]) -> list[dict[str, Any]]:
    """The workload certificates of an Envoy admin ``/certs`` answer: serial, SANs, expiry, CA serials."""
    found: list[dict[str, Any]] = []
    for entry in certs.get("certificates", []):
        for cert in entry.get("cert_chain", []):
            found.append(
                {
                    "serial": cert.get("serial_number"),
                    "uris": [san.get("uri") for san in cert.get("subject_alt_names", []) if san.get("uri")],
                    "expires": cert.get("expiration_time"),
                    "ca_serials": [ca.get("serial_number") for ca in entry.get("ca_cert", [])],
                }
            )
    return found
