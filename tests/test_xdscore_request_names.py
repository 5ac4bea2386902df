"""xdscore.request_names: a SotW request's names read once per distinct request, exactly."""

from __future__ import annotations

from collections.abc import Sequence

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from xdscore.request_names import RequestNames, request_key
from xdscore.watch import WatchedResource, should_respond

EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
NAMES = [f"outbound|9080||svc-{i}.default.svc.cluster.local" for i in range(100)]


def _ack(
    names: Sequence[str] = NAMES, *, version: str = "v1", nonce: str = "n1", type_url: str = EDS
) -> DiscoveryRequest:
    return DiscoveryRequest(type_url=type_url, resource_names=names, version_info=version, response_nonce=nonce)


class _Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, names: Sequence[str]) -> frozenset[str]:
        self.calls += 1
        return frozenset(names)


def test_the_key_is_the_names_and_only_the_names() -> None:
    assert request_key(_ack(version="v1", nonce="n1")) == request_key(_ack(version="v22", nonce="n333"))
    assert request_key(_ack()) != request_key(_ack([*NAMES[:-1], "outbound|9080||other.default.svc.cluster.local"]))
    assert request_key(_ack()) != request_key(_ack(list(reversed(NAMES))))
    assert request_key(_ack()) != request_key(_ack(NAMES[:-1]))
    # what the names do not depend on: the type, the node (a stream's first request), a NACK's error
    assert request_key(_ack()) == request_key(_ack(type_url="type.googleapis.com/envoy.config.route.v3.Route"))
    first = _ack()
    first.node.id = "sidecar~10.0.0.1~a.default~default.svc.cluster.local"
    first.node.metadata["NAMESPACE"] = "default"
    nack = _ack()
    nack.error_detail.message = "rejected"
    assert request_key(first) == request_key(nack) == request_key(_ack())
    assert list(DiscoveryRequest.FromString(request_key(first)).resource_names) == NAMES  # the names, kept whole


def test_an_equal_request_is_not_read_again() -> None:
    remembered, make = RequestNames(min_names=64), _Counting()
    first = remembered.of(_ack(), make)
    again = remembered.of(_ack(version="v2", nonce="n2"), make)
    assert first == frozenset(NAMES) and again is first
    assert make.calls == 1
    changed = remembered.of(_ack([*NAMES, "outbound|9080||new.default.svc.cluster.local"]), make)
    assert changed == frozenset(NAMES) | {"outbound|9080||new.default.svc.cluster.local"}
    assert make.calls == 2


def test_small_requests_are_read_directly_and_old_keys_are_forgotten() -> None:
    two_keys = len(request_key(_ack(NAMES[:65]))) + len(request_key(_ack(NAMES[:66])))
    remembered, make = RequestNames(min_names=64, max_bytes=two_keys), _Counting()  # the last two fit
    assert remembered.of(_ack(NAMES[:63]), make) is None and make.calls == 0 and len(remembered) == 0
    for count in (64, 65, 66):
        remembered.of(_ack(NAMES[:count]), make)
    assert len(remembered) == 2 and make.calls == 3
    assert remembered.held_bytes == two_keys
    remembered.of(_ack(NAMES[:66]), make)  # the most recent: still there
    assert make.calls == 3
    remembered.of(_ack(NAMES[:64]), make)  # forgotten: read again
    assert make.calls == 4
    alone = RequestNames(min_names=64, max_bytes=1)  # one key larger than the bound is still kept
    alone.of(_ack(), make)
    assert len(alone) == 1


def test_an_ack_that_adds_a_name_among_many_gets_a_response() -> None:
    sent = WatchedResource(type_url=EDS, wildcard=False, names=frozenset(NAMES), version_sent="v1", nonce_sent="n1")
    respond, watch = should_respond(sent, _ack(), wildcard=False, now=0)
    assert respond is False and watch.names == frozenset(NAMES)
    added = [*NAMES, "outbound|9080||new.default.svc.cluster.local"]
    respond, watch = should_respond(watch, _ack(added), wildcard=False, now=0)
    assert respond is True and watch.names == frozenset(added)
    respond, watch = should_respond(watch, _ack(NAMES), wildcard=False, now=0)  # back to a set seen before
    assert respond is False and watch.names == frozenset(NAMES)
