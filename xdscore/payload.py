"""A planned response as wire bytes: the cached framing and Any bytes of its resources, concatenated.

A response that carries the client's whole set (``resources is None``) reuses the set's concatenated bodies, the
same bytes objects for every client that gets that set.
"""

from __future__ import annotations

from collections.abc import Iterable

from xdscore import encode
from xdscore.plan import DeltaResponse, SotwResponse
from xdscore.resources import ProxyResources, Resource, ResourceGroup, format_version

__all__ = ["response_payload", "unary_payload"]


def response_payload(
    response: SotwResponse | DeltaResponse | None, current: ProxyResources, *, type_url: str, control_plane: str
) -> bytes | None:
    """The ``DiscoveryResponse`` or ``DeltaDiscoveryResponse`` for ``response``, planned from ``current``; None
    when there is nothing to send."""
    if response is None:
        return None
    chosen = response.resources
    if isinstance(response, SotwResponse):
        return encode.discovery_response(
            version_info=response.version,
            resources=current.sotw_bodies if chosen is None else _sotw_entries(chosen),
            type_url=type_url,
            nonce=response.nonce,
            control_plane=control_plane,
        )
    return encode.delta_discovery_response(
        system_version_info=response.version,
        resources=current.delta_bodies if chosen is None else _delta_entries(chosen),
        type_url=type_url,
        nonce=response.nonce,
        removed_resources=response.removed,
        control_plane=control_plane,
    )


def _sotw_entries(resources: Iterable[Resource]) -> tuple[bytes, ...]:
    return tuple(piece for r in resources for piece in (r.sotw_header, r.any_bytes))


def _delta_entries(resources: Iterable[Resource]) -> tuple[bytes, ...]:
    return tuple(piece for r in resources for piece in (r.delta_prefix, r.any_bytes, r.delta_suffix))


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
