"""The xDS protocol core, shared by every meshplane server that speaks xDS (Pilot's ADS, Citadel's SDS).

It knows nothing of what is served (go-control-plane's ``pkg/server`` and ``pkg/cache``): a server supplies a
``ResourceProducer`` per type URL for each stream, and the core does the rest:

- ``watch``: per-stream, per-type state and ``should_respond``/``should_respond_delta`` (ACK, NACK by
  ``error_detail``, stale nonces, subscriptions), pure but for ``request_names``, the name sets of recent large SotW
  requests (so that an ACK's names are not read again);
- ``plan``: what a SotW or delta response holds, pure; ``changes``: what differs between two resource sets;
- ``resources``: resources serialized once, versioned by content hash, with their response framing;
  ``encode``/``payload``: responses as wire bytes from those cached pieces;
- ``stream``: the per-stream loop (requests, coalesced notices, flow control and a send timeout);
  ``service``: nonces and the gRPC stream methods; ``types``: Envoy's type URLs.
"""

from xdscore.admission import DEFAULT_NEW_STREAMS_BURST, DEFAULT_NEW_STREAMS_PER_SECOND, AdmissionRate
from xdscore.changes import ChangeMemo, ResourceChanges
from xdscore.payload import PayloadMemo, response_payload, unary_payload
from xdscore.plan import DeltaResponse, SotwResponse, forget_sent, plan_delta, plan_sotw
from xdscore.resources import ProxyResources, Resource, ResourceGroup, make_resource, resource_name
from xdscore.service import Nonces, first_request, pass_bytes, stream_methods
from xdscore.stream import (
    DEFAULT_SEND_TIMEOUT,
    DEFAULT_STALL_TIMEOUT,
    Mode,
    Request,
    ResourceProducer,
    SendTimeoutError,
    Sent,
    StreamOwner,
    StreamSettings,
    XdsStream,
)
from xdscore.types import short_type
from xdscore.watch import WILDCARD, Nack, WatchedResource, should_respond, should_respond_delta

__all__ = [
    "DEFAULT_NEW_STREAMS_BURST",
    "DEFAULT_NEW_STREAMS_PER_SECOND",
    "DEFAULT_SEND_TIMEOUT",
    "DEFAULT_STALL_TIMEOUT",
    "WILDCARD",
    "AdmissionRate",
    "ChangeMemo",
    "DeltaResponse",
    "Mode",
    "Nack",
    "Nonces",
    "PayloadMemo",
    "ProxyResources",
    "Request",
    "Resource",
    "ResourceChanges",
    "ResourceGroup",
    "ResourceProducer",
    "SendTimeoutError",
    "Sent",
    "SotwResponse",
    "StreamOwner",
    "StreamSettings",
    "WatchedResource",
    "XdsStream",
    "first_request",
    "forget_sent",
    "make_resource",
    "pass_bytes",
    "plan_delta",
    "plan_sotw",
    "resource_name",
    "response_payload",
    "short_type",
    "should_respond",
    "should_respond_delta",
    "stream_methods",
    "unary_payload",
]
