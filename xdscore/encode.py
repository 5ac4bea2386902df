"""Protobuf wire encoding of xDS responses from pre-serialized pieces.

A DiscoveryResponse is mostly its repeated ``resources`` field: one length-delimited ``google.protobuf.Any`` per
resource. Those Any bytes are computed once per generated resource (see ``resources.py``), so a response is built
by concatenating small headers with the cached bytes, never by re-serializing messages. Fields are emitted in
field-number order, which is what ``SerializeToString`` produces, so the output is byte-identical to it.

Field numbers (envoy/service/discovery/v3/discovery.proto):

- ``DiscoveryResponse``: version_info=1, resources=2, type_url=4, nonce=5, control_plane=6
- ``DeltaDiscoveryResponse``: system_version_info=1, resources=2, type_url=4, nonce=5, removed_resources=6,
  control_plane=7
- ``Resource``: version=1, resource=2, name=3
- ``google.protobuf.Any``: type_url=1, value=2; ``ControlPlane``: identifier=1
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "any_bytes",
    "delta_discovery_response",
    "delta_resource_frame",
    "discovery_response",
    "length_delimited",
    "sotw_resource_header",
    "string_field",
    "varint",
]

_LENGTH_DELIMITED = 2
_RESOURCES_KEY = b"\x12"  # field 2, wire type 2: `resources` in both responses, `resource` in Resource, Any.value


def varint(value: int) -> bytes:
    """Base-128 varint of a non-negative integer."""
    if value < 0:
        raise ValueError(f"varint: value must be >= 0, got {value}")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(field_number: int) -> bytes:
    return varint(field_number << 3 | _LENGTH_DELIMITED)


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes or embedded message), even when empty."""
    return _key(field_number) + varint(len(payload)) + payload


def string_field(field_number: int, value: str) -> bytes:
    """A proto3 string field: omitted when empty, as the protobuf runtime does."""
    if not value:
        return b""
    return length_delimited(field_number, value.encode())


def any_bytes(type_url: str, value: bytes) -> bytes:
    """The serialized ``google.protobuf.Any{type_url, value}``."""
    return string_field(1, type_url) + (length_delimited(2, value) if value else b"")


def sotw_resource_header(any_length: int) -> bytes:
    """Key and length that put an Any of ``any_length`` bytes into ``DiscoveryResponse.resources``."""
    return _RESOURCES_KEY + varint(any_length)


def delta_resource_frame(name: str, version: str, any_length: int) -> tuple[bytes, bytes]:
    """(prefix, suffix) such that ``prefix + any + suffix`` is one ``DeltaDiscoveryResponse.resources`` entry:
    a ``Resource{version, resource=any, name}`` message with its own key and length."""
    version_field = string_field(1, version)
    any_header = _RESOURCES_KEY + varint(any_length)
    suffix = string_field(3, name)
    body_length = len(version_field) + len(any_header) + any_length + len(suffix)
    prefix = _RESOURCES_KEY + varint(body_length) + version_field + any_header
    return prefix, suffix


def _control_plane(field_number: int, identifier: str) -> bytes:
    if not identifier:
        return b""
    return length_delimited(field_number, string_field(1, identifier))


def discovery_response(
    *,
    version_info: str,
    resources: Iterable[bytes],
    type_url: str,
    nonce: str,
    control_plane: str = "",
) -> bytes:
    """A ``DiscoveryResponse``; ``resources`` are already framed entries (header + Any bytes, or whole bodies)."""
    head = string_field(1, version_info)
    tail = string_field(4, type_url) + string_field(5, nonce) + _control_plane(6, control_plane)
    parts = [head]
    parts.extend(resources)
    parts.append(tail)
    return b"".join(parts)


def delta_discovery_response(
    *,
    system_version_info: str,
    resources: Iterable[bytes],
    type_url: str,
    nonce: str,
    removed_resources: Sequence[str] = (),
    control_plane: str = "",
) -> bytes:
    """A ``DeltaDiscoveryResponse``; ``resources`` are framed ``Resource`` entries (see ``delta_resource_frame``)."""
    head = string_field(1, system_version_info)
    tail = [string_field(4, type_url), string_field(5, nonce)]
    tail.extend(length_delimited(6, name.encode()) for name in removed_resources)
    tail.append(_control_plane(7, control_plane))
    parts = [head]
    parts.extend(resources)
    parts.extend(tail)
    return b"".join(parts)
