"""Per-stream, per-type xDS protocol state and the decision whether a request needs a response.

This is Istio's ``ShouldRespond`` (pilot/pkg/xds/ads.go, delta.go) as pure functions over a frozen
``WatchedResource``: they take the current state and a request and return ``(respond, new_state)``. No I/O,
no clock (the caller passes ``now``), tested without gRPC.

Rules (both protocol variants):

- a request with ``error_detail`` is a NACK: it is recorded (``last_nack``) and nothing is re-sent; the proxy gets
  new config on the next change, never the rejected config again (go-control-plane's resend loop, avoided);
- a request whose ``response_nonce`` is not the last nonce sent on this stream is stale: ignored;
- a request whose nonce matches is an ACK: recorded; it needs a response only when it subscribes to new names;
- the first request for a type on a stream (a new proxy, or a proxy reconnecting with ``version_info`` /
  ``initial_resource_versions``) always gets a response.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

from xdscore.request_names import RequestNames
from xdscore.resources import entry_digest

__all__ = [
    "WILDCARD",
    "Nack",
    "WatchedResource",
    "digest_of",
    "should_respond",
    "should_respond_delta",
]

WILDCARD = "*"
_NO_VERSIONS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Nack:
    """A rejected response: what the proxy rejected, what it still runs, and Envoy's error_detail message."""

    version: str  # the version that was rejected ("" when the NACK names a nonce we no longer know)
    running_version: str  # the version the proxy keeps (its request's version_info; for delta, the last ACKed)
    nonce: str
    error: str
    at: float  # unix time

    def log_fields(self) -> dict[str, str]:
        """The NACK as log fields (every server logs it the same way)."""
        return dict(
            rejected_version=self.version, running_version=self.running_version, nonce=self.nonce, error=self.error
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchedResource:
    """What one stream watches of one type, and what it has been sent and has acknowledged.

    ``sent`` maps resource names to the version the proxy was sent (or, on a delta reconnect, said it has).
    An empty version marks a name the proxy was told does not exist (delta ``removed_resources``).
    ``sent_digest`` is the XOR of the sent versions' digests: the type version is derived from it.
    """

    type_url: str
    wildcard: bool
    names: frozenset[str] = frozenset()
    version_sent: str = ""
    nonce_sent: str = ""
    version_acked: str = ""
    nonce_acked: str = ""
    last_nack: Nack | None = None
    sent: Mapping[str, str] = field(default_factory=lambda: _NO_VERSIONS)
    sent_digest: int = 0

    @property
    def acked(self) -> bool:
        """True when the last response sent on this stream has been ACKed (and something was sent)."""
        return bool(self.nonce_sent) and self.nonce_acked == self.nonce_sent

    @property
    def resource_count(self) -> int:
        return sum(1 for version in self.sent.values() if version)


_SHARED_SETS: OrderedDict[frozenset[str], frozenset[str]] = OrderedDict()
_SHARED_SETS_MAX = 256  # distinct large subscriptions remembered (most recently used)
_SHARED_SETS_MIN_SIZE = 64
_REQUEST_NAMES = RequestNames(min_names=_SHARED_SETS_MIN_SIZE)  # SotW ACKs repeat their names: read them once


def _names(names: Sequence[str], current: frozenset[str] = frozenset()) -> frozenset[str]:
    """The requested names as a set: ``current`` when they are the same (every ACK repeats them), else interned.

    A sidecar names thousands of clusters in each EDS request, and most sidecars name the same ones: strings are
    interned and large sets shared between streams, so a thousand streams do not hold a thousand copies."""
    if len(names) == len(current) and current.issuperset(names):
        return current
    return _shared(frozenset(map(sys.intern, names)))


def _shared(names: frozenset[str]) -> frozenset[str]:
    """An equal set already held by another stream, if a recent one is (large sets only)."""
    if len(names) < _SHARED_SETS_MIN_SIZE:
        return names
    shared = _SHARED_SETS.get(names)
    if shared is not None:
        _SHARED_SETS.move_to_end(names)
        return shared
    _SHARED_SETS[names] = names
    if len(_SHARED_SETS) > _SHARED_SETS_MAX:
        _SHARED_SETS.popitem(last=False)
    return names


def digest_of(versions: Iterable[str]) -> int:
    digest = 0
    for version in versions:
        if version:
            digest ^= entry_digest(version)
    return digest


def _nack(
    watch: WatchedResource, request: DiscoveryRequest | DeltaDiscoveryRequest, *, running_version: str, now: float
) -> WatchedResource:
    nonce = request.response_nonce
    rejected = watch.version_sent if nonce and nonce == watch.nonce_sent else ""
    error = request.error_detail.message
    nack = Nack(version=rejected, running_version=running_version, nonce=nonce, error=error, at=now)
    return replace(watch, last_nack=nack)


def should_respond(
    watch: WatchedResource | None, request: DiscoveryRequest, *, wildcard: bool, now: float
) -> tuple[bool, WatchedResource]:
    """State-of-the-world: does ``request`` need a response, and the stream's new state for its type."""
    current = watch.names if watch is not None else frozenset()
    names = _REQUEST_NAMES.of(request, lambda requested: _names(requested, current))
    if names is None:
        names = _names(request.resource_names, current)
    nacked = request.HasField("error_detail")
    if watch is None:
        # First request for this type on this stream: a new proxy, or one reconnecting with the version it has.
        watch = WatchedResource(type_url=request.type_url, wildcard=wildcard, names=names)
        if nacked:
            watch = _nack(watch, request, running_version=request.version_info, now=now)
        return True, watch
    if nacked:
        return False, _nack(watch, request, running_version=request.version_info, now=now)
    if not request.response_nonce:
        # The proxy asks again from scratch on the same stream: give it the full state.
        return True, replace(watch, names=names)
    if request.response_nonce != watch.nonce_sent:
        return False, watch  # stale: a newer response is on its way to the proxy, which will ACK that one
    acked = replace(
        watch,
        names=names,
        version_acked=request.version_info,
        nonce_acked=request.response_nonce,
        last_nack=None,
    )
    if wildcard:
        return False, acked
    # Envoy subscribes to new EDS/RDS names with an ACK-shaped request: respond when names were added.
    return bool(names - watch.names), acked


def should_respond_delta(
    watch: WatchedResource | None, request: DeltaDiscoveryRequest, *, wildcard: bool, now: float
) -> tuple[bool, WatchedResource]:
    """Incremental: does ``request`` need a response, and the stream's new state for its type.

    Subscription changes are applied whatever the nonce (they are not tied to a response); a nonce only decides
    whether the request acknowledges the last response.
    """
    subscribe = _names(request.resource_names_subscribe)
    unsubscribe = frozenset(request.resource_names_unsubscribe)
    if WILDCARD in subscribe or WILDCARD in unsubscribe:
        subscribe, unsubscribe = subscribe - {WILDCARD}, unsubscribe - {WILDCARD}
    nacked = request.HasField("error_detail")
    if watch is None:
        names = subscribe - unsubscribe if unsubscribe else subscribe
        known = dict(request.initial_resource_versions)  # a reconnecting proxy says what it already has
        if not wildcard:
            known = {name: version for name, version in known.items() if name in names}
        watch = WatchedResource(
            type_url=request.type_url,
            wildcard=wildcard,
            names=names,
            sent=MappingProxyType(known),
            sent_digest=digest_of(known.values()),
        )
        if nacked:
            watch = _nack(watch, request, running_version="", now=now)
        return True, watch
    names = watch.names
    if not names.issuperset(subscribe):
        names = names | subscribe
    if not names.isdisjoint(unsubscribe):
        names = names - unsubscribe
    if names is not watch.names:
        names = _shared(names)
    updated = replace(watch, names=names)
    dropped = [name for name in unsubscribe if name in watch.sent] if not wildcard else []
    if dropped:
        # Forget what an unsubscribed name was sent as, so that subscribing again sends it again.
        sent = {name: version for name, version in watch.sent.items() if name not in unsubscribe}
        updated = replace(
            updated,
            sent=MappingProxyType(sent),
            sent_digest=watch.sent_digest ^ digest_of(watch.sent[n] for n in dropped),
        )
    if nacked:
        return False, _nack(updated, request, running_version=watch.version_acked, now=now)
    if request.response_nonce and request.response_nonce == watch.nonce_sent:
        updated = replace(updated, version_acked=watch.version_sent, nonce_acked=request.response_nonce, last_nack=None)
    return (not wildcard and bool(names - watch.names)), updated
