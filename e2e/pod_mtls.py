"""Helpers for the Citadel scenarios in pods: what a pod's sidecar holds (its Envoy admin ``/certs``, read from
inside the pod, where the admin listens on 127.0.0.1:15000), what Citadel sent on each SDS stream, the caller's
identity as the app saw it, and traffic from the productpage pod's plain ``urllib`` app for a while."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agent.pod_network import PodAddress
from e2e.mtls import certificates_in, xfcc_identity
from e2e.pod_mesh import REVIEWS_URL, PodMesh
from e2e.pods import pod_python

__all__ = [
    "assert_no_failure",
    "ca_serials",
    "caller_identity",
    "eventually",
    "pod_certificates",
    "sds_streams",
    "traffic_for",
    "workload_streams",
]

_ADMIN_CERTS = """
import urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
print(opener.open("http://127.0.0.1:15000/certs", timeout=5).read().decode())
"""


def pod_certificates(pod: PodAddress) -> list[dict[str, Any]]:
    """The workload certificates in the pod's sidecar (serial, SANs, expiry, CA serials); [] without an identity."""
    return certificates_in(json.loads(pod_python(pod, _ADMIN_CERTS)))


def ca_serials(pod: PodAddress) -> set[str]:
    return {serial for cert in pod_certificates(pod) for serial in cert["ca_serials"]}


def caller_identity(body: str) -> str | None:
    """The caller's URI SAN in the ``x-forwarded-client-cert`` the reviews sidecar gave the app (its JSON echo)."""
    return xfcc_identity(json.loads(body)["headers"].get("x-forwarded-client-cert"))


async def sds_streams(mesh: PodMesh) -> list[dict[str, Any]]:
    """Citadel's ``/debug/sdsz`` streams: identity, peer (the pod's relay, on the host), serial sent, ACK."""
    assert mesh.citadel is not None
    streams: list[dict[str, Any]] = (await mesh.citadel.get_json("/debug/sdsz"))["streams"]
    return streams


async def workload_streams(mesh: PodMesh, identity: str) -> list[dict[str, Any]]:
    """The SDS streams on which Citadel sends ``identity``'s certificate (``default``; ROOTCA has its own)."""
    return [s for s in await sds_streams(mesh) if s["identity"] == identity and "default" in s["resources"]]


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.5)
    return True


async def traffic_for(mesh: PodMesh, seconds: float, *, batch: int = 10) -> list[tuple[int, str]]:
    """GETs of ``http://reviews:9080/`` from the productpage pod's app, back to back for ``seconds``."""
    responses: list[tuple[int, str]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        responses.extend(await asyncio.to_thread(mesh.get, REVIEWS_URL, batch))
    return responses


def assert_no_failure(responses: list[tuple[int, str]]) -> None:
    failures = [(status, body[:120]) for status, body in responses if status != 200]
    assert not failures, f"{len(failures)} of {len(responses)} failed: {failures[:3]}"
