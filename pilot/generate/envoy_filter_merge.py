"""What EnvoyFilter patching shares: the MERGE of a patch value into a generated message, the generation context a
patch matches, and Istio's deprecated filter names in matches.

MERGE is protobuf's merge (Istio's ``merge.Merge``): a set scalar replaces, a message is merged field by field, a
repeated field is appended to; with Istio's exceptions: a ``Duration`` is replaced whole (not merged by its
``seconds`` and ``nanos``), and an ``Any`` of the same type as the one it merges into is unpacked, merged and packed
again (Istio's ``MergeAnyWithAny``: a filter's ``typed_config``), another type replacing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from pilot.config.envoy_filter_values import patch_message
from pilot.config.types import EnvoyFilterApplyTo, EnvoyFilterContext, EnvoyFilterOperation, EnvoyFilterPatch

__all__ = [
    "DEPRECATED_FILTER_NAMES",
    "canonical_filter_name",
    "context_matches",
    "merge_message",
    "patches_for",
    "proxy_contexts",
    "value_of",
]

# Istio's ``xds.DeprecatedFilterNames`` (the ones of Envoy's filters meshplane generates): a match on the old name
# matches the filter by its current name, as in Istio.
DEPRECATED_FILTER_NAMES = {
    "envoy.http_connection_manager": "envoy.filters.network.http_connection_manager",
    "envoy.tcp_proxy": "envoy.filters.network.tcp_proxy",
    "envoy.router": "envoy.filters.http.router",
    "envoy.lua": "envoy.filters.http.lua",
    "envoy.cors": "envoy.filters.http.cors",
    "envoy.fault": "envoy.filters.http.fault",
    "envoy.ext_authz": "envoy.filters.http.ext_authz",
    "envoy.filters.http.rbac": "envoy.filters.http.rbac",
    "envoy.listener.tls_inspector": "envoy.filters.listener.tls_inspector",
    "envoy.listener.original_dst": "envoy.filters.listener.original_dst",
}
_DURATION = "google.protobuf.Duration"
_ANY = "google.protobuf.Any"


def canonical_filter_name(name: str) -> str:
    return DEPRECATED_FILTER_NAMES.get(name, name)


def patches_for(patches: Iterable[EnvoyFilterPatch], *apply_to: EnvoyFilterApplyTo) -> tuple[EnvoyFilterPatch, ...]:
    return tuple(patch for patch in patches if patch.apply_to in apply_to)


def context_matches(patch: EnvoyFilterPatch, context: EnvoyFilterContext) -> bool:
    """Istio's ``commonConditionMatch`` (``match.proxy`` was decided when the proxy was resolved)."""
    return patch.context in (EnvoyFilterContext.ANY, context)


def proxy_contexts(router: bool) -> frozenset[EnvoyFilterContext]:
    """The contexts whose ADD patches a proxy gets (once): a gateway's ANY and GATEWAY, a sidecar's others."""
    if router:
        return frozenset({EnvoyFilterContext.ANY, EnvoyFilterContext.GATEWAY})
    return frozenset(EnvoyFilterContext) - {EnvoyFilterContext.GATEWAY}


def is_add(patch: EnvoyFilterPatch) -> bool:
    return patch.operation is EnvoyFilterOperation.ADD


def value_of(patch: EnvoyFilterPatch) -> Message:
    """A new copy of the patch's value message (the patch value is stored serialized)."""
    return patch_message(patch.apply_to, patch.value)


def merge_message(target: Message, patch: Message) -> None:
    """Merge ``patch`` into ``target`` in place (see the module doc)."""
    for field, value in patch.ListFields():
        if field.is_repeated:
            if _is_map(field):
                _merge_map(target, field, value)
            else:
                getattr(target, field.name).extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            _merge_field_message(target, field, value)
        else:
            setattr(target, field.name, value)


def _is_map(field: FieldDescriptor) -> bool:
    message = field.message_type
    return message is not None and message.GetOptions().map_entry


def _merge_map(target: Message, field: FieldDescriptor, value: object) -> None:
    mapping = getattr(target, field.name)
    entry = field.message_type
    assert entry is not None  # a map field's entry
    value_field = entry.fields_by_name["value"]
    for key, item in _items(value):
        if value_field.type == FieldDescriptor.TYPE_MESSAGE:
            mapping[key].CopyFrom(item)
        else:
            mapping[key] = item


def _items(value: object) -> Iterator[tuple[object, object]]:
    yield from value.items()  # type: ignore[attr-defined]


def _merge_field_message(target: Message, field: FieldDescriptor, value: Message) -> None:
    message_type = field.message_type
    assert message_type is not None  # a message field
    name = message_type.full_name
    current = getattr(target, field.name)
    if name == _DURATION or not target.HasField(field.name):
        current.CopyFrom(value)
        return
    if name == _ANY:
        merged = _merge_any(current, value)  # type: ignore[arg-type]
        current.CopyFrom(merged)
        return
    merge_message(current, value)


def _merge_any(current: AnyMessage, patch: AnyMessage) -> AnyMessage:
    if current.type_url != patch.type_url:
        return patch
    full_name = current.type_url.rsplit("/", 1)[-1]
    try:
        message_class = message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(full_name))
    except KeyError:
        return patch
    inner, extra = message_class(), message_class()
    current.Unpack(inner)
    patch.Unpack(extra)
    merge_message(inner, extra)
    packed = AnyMessage()
    packed.Pack(inner)
    return packed
