"""A planned response as wire bytes: the cached framing and Any bytes of its resources, concatenated.

A response that carries the client's whole set (``resources is None``) reuses the set's concatenated bodies, the
same bytes objects for every client that gets that set. With a ``PayloadMemo`` (``shared_payload``), streams share
whole responses too: the first stream to send a response (resources, version, type, removed names) concatenates it
with its nonce, and every other stream that sends an equal response while it is remembered writes the same bytes
object, with that nonce. A nonce then names one response content in the process, on every stream that got it: a
client's stale nonce never names another response (what a process-wide counter gave), and a push is concatenated
once, not once per stream (a route table of a few hundred KB copied per stream was most of the Python work of
sending it, page faults of the fresh buffers included).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable

from xdscore import encode
from xdscore.plan import DeltaResponse, SotwResponse
from xdscore.resources import ProxyResources, Resource, ResourceGroup, format_version

__all__ = ["DEFAULT_PAYLOAD_MEMO_SIZE", "PayloadMemo", "response_payload", "shared_payload", "unary_payload"]

DEFAULT_PAYLOAD_MEMO_SIZE = 16  # responses: one push is one or a few (streams at different points), of every type


class PayloadMemo:
    """The latest responses' wire bytes and nonces, by everything else they are made of: the resources (by
    identity: they are immutable, and the memo keeps them alive while it keeps their key), version, removed names,
    type and control plane. Least recently used first out; for the event loop's thread."""

    __slots__ = ("_entries", "_size", "hits", "misses")

    def __init__(self, size: int = DEFAULT_PAYLOAD_MEMO_SIZE) -> None:
        if size < 1:
            raise ValueError(f"PayloadMemo: size must be >= 1, got {size}")
        self._size = size
        self._entries: OrderedDict[Hashable, tuple[object, bytes, str]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> tuple[bytes, str] | None:
        """(payload, nonce) of the response remembered under ``key``."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1], entry[2]

    def put(self, key: Hashable, keep: object, payload: bytes, nonce: str) -> None:
        """``keep``: the objects whose ids ``key`` holds (alive while the entry is)."""
        self._entries[key] = (keep, payload, nonce)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def response_payload(
    response: SotwResponse | DeltaResponse | None, current: ProxyResources, *, type_url: str, control_plane: str
) -> bytes | None:
    """The ``DiscoveryResponse`` or ``DeltaDiscoveryResponse`` for ``response``, planned from ``current``; None
    when there is nothing to send."""
    if response is None:
        return None
    return _payload(response, current, type_url=type_url, control_plane=control_plane)


def shared_payload(
    response: SotwResponse | DeltaResponse | None,
    current: ProxyResources,
    *,
    type_url: str,
    control_plane: str,
    memo: PayloadMemo | None,
) -> tuple[bytes, str] | None:
    """(payload, nonce) for ``response``: an equal response's in ``memo`` (its bytes, and its nonce in place of
    ``response.nonce``), else ``response_payload`` with ``response.nonce``, remembered; None when there is nothing
    to send. Without a memo, the payload with ``response.nonce``."""
    if response is None:
        return None
    if memo is None:
        return _payload(response, current, type_url=type_url, control_plane=control_plane), response.nonce
    chosen = response.resources
    delta = isinstance(response, DeltaResponse)
    if chosen is None:  # the whole set: its bodies, the same bytes objects for proxies that share its groups
        sources: object = current
        ids = tuple(map(id, current.delta_bodies if delta else current.sotw_bodies))
    else:
        sources, ids = chosen, tuple(map(id, chosen))
    removed = response.removed if isinstance(response, DeltaResponse) else ()
    key = (delta, type_url, control_plane, response.version, removed, ids)
    found = memo.get(key)
    if found is not None:
        return found
    payload = _payload(response, current, type_url=type_url, control_plane=control_plane)
    memo.put(key, sources, payload, response.nonce)
    return payload, response.nonce


def _payload(
    response: SotwResponse | DeltaResponse, current: ProxyResources, *, type_url: str, control_plane: str
) -> bytes:
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
