"""Helpers for the mutual-TLS scenarios: Istio security YAML, plaintext callers, and what a sidecar's Envoy holds."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import aiohttp

from e2e.harness import LocalMesh
from e2e.traffic import MeshResponse

__all__ = ["caller_identity", "peer_authentication", "plaintext_get", "workload_certificates"]


def caller_identity(response: MeshResponse) -> str | None:
    """The caller's URI SAN that the server's sidecar put in ``x-forwarded-client-cert``, as the app saw it."""
    xfcc = response.request_headers.get("x-forwarded-client-cert")
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


async def plaintext_get(url: str, *, source: str) -> int | str:
    """A GET from ``source`` straight to ``url``, no sidecar: the status, or the transport error's name."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(url) as response,
        ):
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__


async def workload_certificates(mesh: LocalMesh, workload: str) -> list[dict[str, Any]]:
    """The workload certificates in the sidecar's Envoy (admin ``/certs``): serial, SANs, CA serials."""
    response = await mesh.workloads[workload].envoy.admin_get("/certs")
    found: list[dict[str, Any]] = []
    for entry in response.json().get("certificates", []):
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
