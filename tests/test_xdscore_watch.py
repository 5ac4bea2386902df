"""The protocol state machine without gRPC: should_respond (SotW + delta) and the response planners."""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

from xdscore.plan import DeltaResponse, plan_delta, plan_sotw
from xdscore.resources import ProxyResources, Resource, ResourceGroup, make_resource
from xdscore.watch import WatchedResource, digest_of, should_respond, should_respond_delta

RequestT = TypeVar("RequestT", DiscoveryRequest, DeltaDiscoveryRequest)
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"


def _res(name: str, seconds: int = 1) -> Resource:
    cluster = Cluster(name=name)
    cluster.connect_timeout.seconds = seconds
    return make_resource(cluster)


def _view(*resources: Resource) -> ProxyResources:
    return ProxyResources.of([ResourceGroup.of(resources)])


def _rejecting(request: RequestT, error: object) -> RequestT:
    if error is not None:
        request.error_detail.message = str(error)
    return request


def _sotw(error: object = None, **fields: object) -> DiscoveryRequest:
    return _rejecting(DiscoveryRequest(**fields), error)


def _delta(error: object = None, **fields: object) -> DeltaDiscoveryRequest:
    return _rejecting(DeltaDiscoveryRequest(**fields), error)


SENT = WatchedResource(type_url=EDS, wildcard=False, names=frozenset({"a"}), version_sent="v1", nonce_sent="n1")


# ------------------------------------------------------------------------------------------ SotW


@pytest.mark.parametrize(
    ("watch", "request_", "respond", "acked", "names"),
    [
        (None, _sotw(type_url=EDS, resource_names=["a"]), True, "", {"a"}),
        (None, _sotw(type_url=EDS, resource_names=["a"], version_info="v0", response_nonce="old"), True, "", {"a"}),
        (SENT, _sotw(type_url=EDS, resource_names=["a"], version_info="v1", response_nonce="n1"), False, "v1", {"a"}),
        (
            SENT,
            _sotw(type_url=EDS, resource_names=["a", "b"], version_info="v1", response_nonce="n1"),
            True,
            "v1",
            {"a", "b"},
        ),
        (SENT, _sotw(type_url=EDS, resource_names=[], version_info="v1", response_nonce="n1"), False, "v1", set()),
        (
            SENT,
            _sotw(type_url=EDS, resource_names=["a", "b"], version_info="v0", response_nonce="n0"),
            False,
            "",
            {"a"},
        ),
        (SENT, _sotw(type_url=EDS, resource_names=["a", "b"]), True, "", {"a", "b"}),
    ],
    ids=[
        "initial",
        "reconnect-with-version",
        "ack",
        "ack-subscribing-new-name",
        "ack-unsubscribing-only",
        "stale-nonce-ignored",
        "asks-again-without-nonce",
    ],
)
def test_should_respond(
    watch: WatchedResource | None, request_: DiscoveryRequest, respond: bool, acked: str, names: set[str]
) -> None:
    got, new = should_respond(watch, request_, wildcard=False, now=1.0)
    assert got is respond
    assert new.version_acked == acked
    assert new.names == names


def test_nack_is_recorded_and_not_answered() -> None:
    request = _sotw(type_url=EDS, resource_names=["a"], version_info="v0", response_nonce="n1", error="bad cluster")
    respond, watch = should_respond(SENT, request, wildcard=False, now=42.0)
    assert respond is False
    assert watch.last_nack is not None
    assert (watch.last_nack.version, watch.last_nack.running_version) == ("v1", "v0")
    assert (watch.last_nack.error, watch.last_nack.nonce, watch.last_nack.at) == ("bad cluster", "n1", 42.0)
    assert watch.version_acked == "" and not watch.acked
    # The next ACK clears it (Istio clears LastError on ACK).
    _, acked = should_respond(
        replace(watch, nonce_sent="n2", version_sent="v2"),
        _sotw(type_url=EDS, resource_names=["a"], version_info="v2", response_nonce="n2"),
        wildcard=False,
        now=43.0,
    )
    assert acked.last_nack is None and acked.acked


def test_wildcard_ack_never_needs_a_response() -> None:
    watch = replace(SENT, type_url=CDS, wildcard=True)
    respond, new = should_respond(
        watch, _sotw(type_url=CDS, resource_names=["x"], response_nonce="n1"), wildcard=True, now=0
    )
    assert respond is False and new.acked


# ------------------------------------------------------------------------------------------ delta


def test_delta_initial_with_reconnect_versions() -> None:
    request = _delta(type_url=EDS, resource_names_subscribe=["a", "b"], initial_resource_versions={"a": "1", "z": "9"})
    respond, watch = should_respond_delta(None, request, wildcard=False, now=0)
    assert respond is True
    assert watch.names == {"a", "b"}
    assert dict(watch.sent) == {"a": "1"}  # names the stream does not subscribe to are not tracked
    assert watch.sent_digest == digest_of(["1"])


def test_delta_subscription_changes_apply_whatever_the_nonce() -> None:
    watch = replace(SENT, sent={"a": "va"}, sent_digest=digest_of(["va"]))
    respond, new = should_respond_delta(
        watch, _delta(type_url=EDS, resource_names_subscribe=["b"], response_nonce="stale"), wildcard=False, now=0
    )
    assert respond is True and new.names == {"a", "b"} and not new.acked
    respond, new = should_respond_delta(
        new, _delta(type_url=EDS, resource_names_unsubscribe=["a"], response_nonce="n1"), wildcard=False, now=0
    )
    assert respond is False and new.names == {"b"}
    assert dict(new.sent) == {} and new.sent_digest == 0  # resubscribing to "a" will send it again
    assert new.acked and new.version_acked == "v1"


def test_delta_nack_recorded_without_response() -> None:
    watch = replace(SENT, version_acked="v0")
    respond, new = should_respond_delta(
        watch, _delta(type_url=EDS, response_nonce="n1", error="rejected"), wildcard=False, now=5.0
    )
    assert respond is False
    assert new.last_nack is not None and (new.last_nack.version, new.last_nack.running_version) == ("v1", "v0")


# ------------------------------------------------------------------------------------------ planners


def test_plan_sotw_wildcard_sends_everything_once() -> None:
    view = _view(_res("a"), _res("b"))
    watch = WatchedResource(type_url=CDS, wildcard=True)
    response, watch = plan_sotw(watch, view, nonce="n1", full=True)
    assert response is not None and response.resources is None and response.count == 2
    assert (watch.version_sent, watch.nonce_sent) == (view.version, "n1")
    assert plan_sotw(watch, view, nonce="n2", full=False)[0] is None  # same version: no push
    changed = _view(_res("a"), _res("b", 2))
    response, _ = plan_sotw(watch, changed, nonce="n3", full=False)
    assert response is not None and response.version == changed.version


def test_plan_sotw_named_sends_only_changed_subscribed_names() -> None:
    a, b, c = _res("a"), _res("b"), _res("c")
    watch = WatchedResource(type_url=EDS, wildcard=False, names=frozenset({"a", "b", "missing"}))
    response, watch = plan_sotw(watch, _view(a, b, c), nonce="n1", full=True)
    assert response is not None and [r.name for r in response.resources or ()] == ["a", "b"]
    assert response.version == _view(a, b).version  # the version covers exactly what the proxy has
    b2 = _res("b", 2)
    response, watch = plan_sotw(watch, _view(a, b2, c), nonce="n2", full=False)
    assert response is not None and [r.name for r in response.resources or ()] == ["b"]
    assert response.version == _view(a, b2).version
    assert plan_sotw(watch, _view(a, b2, _res("c", 3)), nonce="n3", full=False)[0] is None  # c not subscribed


def _sent(response: DeltaResponse, view: ProxyResources) -> list[str]:
    """Names a delta response carries (``resources=None`` means all of the view, from its cached bodies)."""
    return list(view.resources) if response.resources is None else [r.name for r in response.resources]


def test_plan_delta_add_update_remove() -> None:
    a, b = _res("a"), _res("b")
    watch = WatchedResource(type_url=CDS, wildcard=True)
    response, watch = plan_delta(watch, _view(a, b), nonce="n1", force=True)
    assert response is not None and response.resources is None and response.removed == ()
    assert _sent(response, _view(a, b)) == ["a", "b"] and response.version == _view(a, b).version
    a2, c = _res("a", 2), _res("c")
    response, watch = plan_delta(watch, _view(a2, c), nonce="n2", force=False)
    assert response is not None
    assert _sent(response, _view(a2, c)) == ["a", "c"] and response.removed == ("b",)
    assert response.version == _view(a2, c).version
    assert plan_delta(watch, _view(a2, c), nonce="n3", force=False)[0] is None


def test_plan_delta_reconnect_sends_only_differences() -> None:
    a, b, c = _res("a"), _res("b"), _res("c")
    request = _delta(type_url=CDS, initial_resource_versions={"a": a.version, "b": "old", "gone": "x"})
    _, watch = should_respond_delta(None, request, wildcard=True, now=0)
    response, _ = plan_delta(watch, _view(a, b, c), nonce="n1", force=True)
    assert response is not None
    assert _sent(response, _view(a, b, c)) == ["b", "c"] and response.removed == ("gone",)


def test_plan_delta_named_tells_once_that_a_subscribed_name_does_not_exist() -> None:
    watch = WatchedResource(type_url=EDS, wildcard=False, names=frozenset({"a", "nope"}))
    response, watch = plan_delta(watch, _view(_res("a")), nonce="n1", force=True)
    assert response is not None and response.removed == ("nope",) and _sent(response, _view(_res("a"))) == ["a"]
    assert plan_delta(watch, _view(_res("a")), nonce="n2", force=False)[0] is None
    response, _ = plan_delta(watch, _view(_res("a"), _res("nope")), nonce="n3", force=False)
    assert response is not None and _sent(response, _view(_res("a"), _res("nope"))) == ["nope"]


# ------------------------------------------------------------------------------------------ every_watched (SDS)


def test_plan_sotw_every_watched_sends_every_watched_resource_or_nothing() -> None:
    """Envoy's SDS refuses a SotW response that lacks a secret it watches: each response carries all of them."""
    a, b, c = _res("a"), _res("b"), _res("c")
    watch = WatchedResource(type_url=EDS, wildcard=False, names=frozenset({"a", "b", "missing"}))
    response, watch = plan_sotw(watch, _view(a, b, c), nonce="n1", full=True, every_watched=True)
    assert response is not None and [r.name for r in response.resources or ()] == ["a", "b"]
    assert response.version == _view(a, b).version
    assert plan_sotw(watch, _view(a, b, c), nonce="n2", full=False, every_watched=True)[0] is None, "nothing changed"
    b2 = _res("b", 2)
    response, _ = plan_sotw(watch, _view(a, b2), nonce="n3", full=False, every_watched=True)
    assert response is not None and [r.name for r in response.resources or ()] == ["a", "b"], "a too, unchanged"
    assert response.version == _view(a, b2).version


@pytest.mark.parametrize("names", [frozenset({"missing"}), frozenset()], ids=["unknown-name", "no-names"])
def test_plan_sotw_every_watched_never_sends_an_empty_response(names: frozenset[str]) -> None:
    watch = WatchedResource(type_url=EDS, wildcard=False, names=names)
    assert plan_sotw(watch, _view(_res("a")), nonce="n1", full=True, every_watched=True) == (None, watch)
