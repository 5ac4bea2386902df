"""Per-stream SDS protocol state and the decision whether a request needs a response: pure, tested without gRPC.

The rules are Istio's ``ShouldRespond`` (pilot/pkg/xds/ads.go, delta.go), the same as Pilot's ADS server
(``pilot.xds.watch``) for a named (non-wildcard) type; Citadel keeps its own copy so that it does not load Pilot's
xDS server and generators:

- a request with ``error_detail`` is a NACK: it is recorded (``last_nack``) and nothing is re-sent; the workload
  gets secrets again on the next change (a rotation), never the rejected ones in a loop;
- a SotW request whose ``response_nonce`` is not the last nonce sent is stale: ignored;
- a request whose nonce matches is an ACK: recorded; it needs a response only when it subscribes to new names;
- the first request on a stream, and a SotW request without a nonce, always get a response.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

__all__ = ["Nack", "SecretWatch", "should_respond", "should_respond_delta"]

_NOTHING: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Nack:
    """A rejected response: its version ("" when the nonce is not the last one sent), nonce and Envoy's error."""

    version: str
    nonce: str
    error: str
    at: float  # unix time


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretWatch:
    """What one stream subscribes to, and what it was sent and has acknowledged.

    ``sent`` maps names to the version the stream was sent (or, on a delta reconnect, says it has); an empty
    version marks a name it was told does not exist (delta ``removed_resources``)."""

    names: frozenset[str] = frozenset()
    sent: Mapping[str, str] = field(default_factory=lambda: _NOTHING)
    version_sent: str = ""
    nonce_sent: str = ""
    version_acked: str = ""
    nonce_acked: str = ""
    last_nack: Nack | None = None

    @property
    def acked(self) -> bool:
        """True when something was sent and the last response sent has been ACKed."""
        return bool(self.nonce_sent) and self.nonce_acked == self.nonce_sent


def _nack(watch: SecretWatch, *, nonce: str, error: str, now: float) -> SecretWatch:
    rejected = watch.version_sent if nonce and nonce == watch.nonce_sent else ""
    return replace(watch, last_nack=Nack(version=rejected, nonce=nonce, error=error, at=now))


def should_respond(watch: SecretWatch | None, request: DiscoveryRequest, *, now: float) -> tuple[bool, SecretWatch]:
    """State of the world: does ``request`` need a response, and the stream's new state."""
    names = frozenset(request.resource_names)
    nacked = request.HasField("error_detail")
    if watch is None:
        watch = SecretWatch(names=names)
        if nacked:
            watch = _nack(watch, nonce=request.response_nonce, error=request.error_detail.message, now=now)
        return True, watch
    if nacked:
        return False, _nack(watch, nonce=request.response_nonce, error=request.error_detail.message, now=now)
    if not request.response_nonce:
        return True, replace(watch, names=names)  # asks again from scratch on the same stream
    if request.response_nonce != watch.nonce_sent:
        return False, watch  # stale: a newer response is on its way, the workload will ACK that one
    acked = replace(
        watch, names=names, version_acked=request.version_info, nonce_acked=request.response_nonce, last_nack=None
    )
    return bool(names - watch.names), acked


def should_respond_delta(
    watch: SecretWatch | None, request: DeltaDiscoveryRequest, *, now: float
) -> tuple[bool, SecretWatch]:
    """Incremental: does ``request`` need a response, and the stream's new state. Subscription changes apply
    whatever the nonce; the nonce only decides whether the request ACKs the last response."""
    subscribe = frozenset(request.resource_names_subscribe)
    unsubscribe = frozenset(request.resource_names_unsubscribe)
    nacked = request.HasField("error_detail")
    if watch is None:
        names = subscribe - unsubscribe
        known = {name: version for name, version in request.initial_resource_versions.items() if name in names}
        watch = SecretWatch(names=names, sent=MappingProxyType(known))
        if nacked:
            watch = _nack(watch, nonce=request.response_nonce, error=request.error_detail.message, now=now)
        return True, watch
    names = (watch.names | subscribe) - unsubscribe
    updated = replace(watch, names=names)
    if unsubscribe & watch.sent.keys():
        # forget what an unsubscribed name was sent as, so that subscribing again sends it again
        updated = replace(updated, sent=MappingProxyType({n: v for n, v in watch.sent.items() if n not in unsubscribe}))
    if nacked:
        return False, _nack(updated, nonce=request.response_nonce, error=request.error_detail.message, now=now)
    if request.response_nonce and request.response_nonce == watch.nonce_sent:
        updated = replace(updated, version_acked=watch.version_sent, nonce_acked=request.response_nonce, last_nack=None)
    return bool(names - watch.names), updated
