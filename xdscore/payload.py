"""A planned response as wire bytes: the cached framing and Any bytes of its resources, concatenated.

A response that carries the client's whole set (``resources is None``) reuses the set's concatenated bodies, the
same bytes objects for every client that gets that set.
"""

from __future__ import annotations

from xdscore import encode
from xdscore.plan import DeltaResponse, SotwResponse
from xdscore.resources import ProxyResources, Resource, ResourceGroup, format_version

__all__ = ["delta_payload", "sotw_payload", "unary_payload"]


def sotw_payload(
    response: SotwResponse | None, current: ProxyResources, *, type_url: str, control_plane: str
) -> bytes | None:
    """The ``DiscoveryResponse`` for ``response`` (planned from ``current``); None when there is nothing to send."""
    if response is None:
        return None
    if response.resources is None:
        bodies: list[bytes] | tuple[bytes, ...] = current.sotw_bodies
    else:
        bodies = [piece for r in response.resources for piece in (r.sotw_header, r.any_bytes)]
    return encode.discovery_response(
        version_info=response.version,
        resources=bodies,
        type_url=type_url,
        nonce=response.nonce,
        control_plane=control_plane,
    )


def delta_payload(
    response: DeltaResponse | None, current: ProxyResources, *, type_url: str, control_plane: str
) -> bytes | None:
    """The ``DeltaDiscoveryResponse`` for ``response`` (planned from ``current``); None: nothing to send."""
    if response is None:
        return None
    if response.resources is None:
        bodies: list[bytes] | tuple[bytes, ...] = current.delta_bodies
    else:
        bodies = [piece for r in response.resources for piece in (r.delta_prefix, r.any_bytes, r.delta_suffix)]
    return encode.delta_discovery_response(
        system_version_info=response.version,
        resources=bodies,
        type_url=type_url,
        nonce=response.nonce,
        removed_resources=response.removed,
        control_plane=control_plane,
    )


def unary_payload(resources: list[Resource], *, type_url: str, nonce: str, control_plane: str) -> bytes:
    """A ``DiscoveryResponse`` with ``resources`` for a unary fetch (``FetchSecrets``, ``FetchClusters``...)."""
    group = ResourceGroup.of(resources)
    return encode.discovery_response(
        version_info=format_version(group.digest),
        resources=(group.sotw_body,),
        type_url=type_url,
        nonce=nonce,
        control_plane=control_plane,
    )
