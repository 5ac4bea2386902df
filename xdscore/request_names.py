"""A state-of-the-world request's names, without making them Python strings when an equal request was seen.

Every SotW ACK repeats the names the proxy watches: an Envoy names every cluster in each EDS request, thousands of
them, and upb makes a Python string of each one read (about 200 us for 3000 names, per ACK). ``RequestNames``
remembers the name sets of recent large requests by the request's wire form without ``version_info`` and
``response_nonce`` (the two fields an ACK changes): ``request_key``. Two requests with an equal key name the same
resources in the same order, so the set found for one is the other's, exactly: no hash stands for the names.

The key is made in upb, not in Python: the request is serialized and parsed again as ``RequestProbe``, a message
that declares only fields 1 and 5 of ``DiscoveryRequest``; every other field (the names, the type URL, the node)
is kept as unknown bytes, which serialize as they are once the two fields are cleared (about 50 us for 3000 names).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

__all__ = ["RequestNames", "request_key"]

_VERSION_INFO, _RESPONSE_NONCE = 1, 5  # DiscoveryRequest's field numbers (discovery.proto)


def _probe_class() -> type[Message]:
    """``RequestProbe { string version_info = 1; string response_nonce = 5; }``, in a pool of its own."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="xdscore/request_probe.proto", package="xdscore.probe", syntax="proto3"
    )
    message = proto.message_type.add(name="RequestProbe")
    for name, number in (("version_info", _VERSION_INFO), ("response_nonce", _RESPONSE_NONCE)):
        message.field.add(
            name=name,
            number=number,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("xdscore.probe.RequestProbe"))


_PROBE = _probe_class()


def request_key(request: DiscoveryRequest) -> bytes:
    """``request``'s wire form without ``version_info`` and ``response_nonce``."""
    probe = _PROBE.FromString(request.SerializeToString())
    probe.ClearField("version_info")
    probe.ClearField("response_nonce")
    return probe.SerializeToString()


class RequestNames:
    """The name sets of the last ``capacity`` distinct requests naming at least ``min_names`` resources, by
    ``request_key``. A key is about the size of its request (143 KB for 3000 cluster names): 64 of those hold
    9 MB at most."""

    def __init__(self, *, min_names: int = 64, capacity: int = 64) -> None:
        self._min_names = min_names
        self._capacity = capacity
        self._sets: OrderedDict[bytes, frozenset[str]] = OrderedDict()

    def of(self, request: DiscoveryRequest, make: Callable[[Sequence[str]], frozenset[str]]) -> frozenset[str] | None:
        """The set of ``request``'s names, made by ``make`` (the caller's interning) when no equal request is
        remembered; None when it names fewer than ``min_names`` (cheaper to read than to key)."""
        if len(request.resource_names) < self._min_names:
            return None
        key = request_key(request)
        found = self._sets.get(key)
        if found is not None:
            self._sets.move_to_end(key)
            return found
        found = make(request.resource_names)
        self._sets[key] = found
        if len(self._sets) > self._capacity:
            self._sets.popitem(last=False)
        return found

    def __len__(self) -> int:
        return len(self._sets)
