"""A state-of-the-world request's names, without making them Python strings when an equal request was seen.

Every SotW ACK repeats the names the proxy watches: an Envoy names every cluster in each EDS request, thousands of
them, and upb makes a Python string of each one read (about 250 us for 3000 names, per ACK). ``RequestNames``
remembers the name sets of recent large requests by ``request_key``: the request's wire form without the fields the
names do not depend on (``version_info`` and ``response_nonce``, which every ACK changes; the node, which Envoy sends
on a stream's first request and some clients on every one, its map entries in no fixed order; the type URL; a
NACK's ``error_detail``). Two requests with an equal key name the same resources in the same order, so the set found
for one is the other's, exactly: no hash stands for the names.

The key is made in upb, not in Python: the request is serialized and parsed again as ``RequestProbe``, a message
that declares only those fields of ``DiscoveryRequest`` (the node and the error as bytes); the names (and any field
not declared) are kept as unknown bytes, which serialize as they are once the declared fields are cleared (about
50 us for 3000 names).

Used on the event loop only (``should_respond``), as every xDS server here runs its streams on one loop: no lock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

__all__ = ["RequestNames", "request_key"]

# DiscoveryRequest's fields (discovery.proto) the key leaves out; the names are field 3
_LEFT_OUT = {"version_info": 1, "node": 2, "type_url": 4, "response_nonce": 5, "error_detail": 6}


def _probe_class() -> type[Message]:
    """``RequestProbe`` with ``_LEFT_OUT``'s fields (as ``bytes``: nothing is checked), in a pool of its own."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="xdscore/request_probe.proto", package="xdscore.probe", syntax="proto3"
    )
    message = proto.message_type.add(name="RequestProbe")
    for name, number in _LEFT_OUT.items():
        message.field.add(
            name=name,
            number=number,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("xdscore.probe.RequestProbe"))


_PROBE = _probe_class()


def request_key(request: DiscoveryRequest) -> bytes:
    """``request``'s wire form without the ``_LEFT_OUT`` fields."""
    probe = _PROBE.FromString(request.SerializeToString())
    for name in _LEFT_OUT:
        probe.ClearField(name)
    return probe.SerializeToString()


class RequestNames:
    """The name sets of the most recent distinct requests naming at least ``min_names`` resources, by
    ``request_key``, their keys holding at most ``max_bytes`` together. A key is about the size of its names (143 KB
    for 3000 cluster names): 32 MB hold 229 of those, and more of the smaller sets a Sidecar scopes. When more
    distinct large sets than fit take turns, every request misses, and pays about 50 us more than reading its names
    alone."""

    def __init__(self, *, min_names: int = 64, max_bytes: int = 32 << 20) -> None:
        self._min_names = min_names
        self._max_bytes = max_bytes
        self._bytes = 0
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
        self._bytes += len(key)
        while self._bytes > self._max_bytes and len(self._sets) > 1:
            evicted, _ = self._sets.popitem(last=False)
            self._bytes -= len(evicted)
        return found

    def __len__(self) -> int:
        return len(self._sets)

    @property
    def held_bytes(self) -> int:
        """The keys' bytes held now."""
        return self._bytes
