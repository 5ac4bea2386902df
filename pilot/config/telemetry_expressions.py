"""The expressions of Istio's Telemetry API that meshplane translates exactly: a small, fixed subset of CEL.

- ``accessLogging[].filter.expression``: ``response.code <op> <code>`` with ``op`` one of ``>=``, ``>``, ``<=``,
  ``<``, ``==``, ``!=`` (Istio's docs write ``response.code >= 400``). Envoy evaluates it with its CEL access-log
  filter, as Istio configures it (``pilot.generate.telemetry_access_logs``).
- ``metrics[].overrides[].tagOverrides.<tag>.value`` (evaluated by Mixer for each request record,
  ``mixer.metric_overrides``): a string literal (``'v'`` or ``"v"``), one of the request attributes of
  :data:`TAG_ATTRIBUTES` (optionally inside ``string(...)``), or a peer's label:
  ``upstream_peer.labels['<label>'].value`` (the destination workload's label, known to the client side) and
  ``downstream_peer.labels['<label>'].value`` (the source workload's, known to the server side). As in Istio's
  stats filter, a value that cannot be computed (no such label, the peer not known on that side) is ``unknown``.

Anything else is rejected as "not supported by meshplane yet", naming the forms that are: an expression meshplane
would evaluate differently from Envoy's CEL is never accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "LOG_FILTER_FORMS",
    "TAG_ATTRIBUTES",
    "TAG_VALUE_FORMS",
    "StatusCodeComparison",
    "TagValue",
    "parse_log_filter",
    "parse_tag_value",
]

# attribute -> what it is (Envoy's attribute names, https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/
# advanced/attributes); Mixer reads each from the access-log entry (mixer.log_entries.RequestRecord)
TAG_ATTRIBUTES: dict[str, str] = {
    "request.method": "the request method",
    "request.host": "the :authority (Host) header",
    "request.path": "the :path header, with its query",
    "request.url_path": "the path without its query",
    "request.scheme": "the URL scheme",
    "request.useragent": "the User-Agent header",
    "request.id": "the x-request-id header",
    "request.protocol": "HTTP/1.0, HTTP/1.1, HTTP/2 or HTTP/3",
    "response.code": "the response status code",
    "destination.port": "the port the downstream connection was made to",
}
TAG_VALUE_FORMS = (
    "a string literal ('v'), "
    + ", ".join(sorted(TAG_ATTRIBUTES))
    + ", string(<one of those>), upstream_peer.labels['<label>'].value, downstream_peer.labels['<label>'].value"
)
LOG_FILTER_FORMS = "response.code <op> <status code>, with <op> one of >=, >, <=, <, ==, !="

_LITERAL = re.compile(r"""'([^'\\]*)'|"([^"\\]*)\"""")
_STRING_CALL = re.compile(r"string\(\s*([a-z_.]+)\s*\)")
_PEER_LABEL = re.compile(r"""(upstream_peer|downstream_peer)\.labels\[\s*(?:'([^'\\]+)'|"([^"\\]+)")\s*\]\.value""")
_STATUS = re.compile(r"response\.code\s*(>=|>|<=|<|==|!=)\s*([0-9]{1,3})")


@dataclass(frozen=True, slots=True, kw_only=True)
class TagValue:
    """A parsed tag value: ``literal`` (``text``), an ``attribute`` (``name``: one of TAG_ATTRIBUTES), or a
    ``peer_label`` (``name``: the label; ``peer``: ``upstream`` or ``downstream``)."""

    kind: Literal["literal", "attribute", "peer_label"]
    text: str = ""
    name: str = ""
    peer: Literal["upstream", "downstream", ""] = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusCodeComparison:
    op: str
    code: int


def parse_tag_value(source: str) -> TagValue | str:
    """The tag value of ``source``, or why it is not one meshplane evaluates (see the module doc)."""
    text = source.strip()
    if (literal := _LITERAL.fullmatch(text)) is not None:
        return TagValue(kind="literal", text=literal.group(1) if literal.group(1) is not None else literal.group(2))
    call = _STRING_CALL.fullmatch(text)
    name = call.group(1) if call is not None else text
    if name in TAG_ATTRIBUTES:
        return TagValue(kind="attribute", name=name)
    if (peer := _PEER_LABEL.fullmatch(text)) is not None:
        side: Literal["upstream", "downstream"] = "upstream" if peer.group(1) == "upstream_peer" else "downstream"
        return TagValue(kind="peer_label", name=peer.group(2) or peer.group(3), peer=side)
    return f"tag value expression {source!r}: not supported by meshplane yet (supported: {TAG_VALUE_FORMS})"


def parse_log_filter(source: str) -> StatusCodeComparison | str:
    """The comparison ``source`` is, or why meshplane does not translate it (see the module doc)."""
    match = _STATUS.fullmatch(source.strip())
    if match is None:
        return f"filter expression {source!r}: not supported by meshplane yet (supported: {LOG_FILTER_FORMS})"
    code = int(match.group(2))
    if not 100 <= code <= 599:
        return f"filter expression {source!r}: {code} is not an HTTP status code (100-599)"
    return StatusCodeComparison(op=match.group(1), code=code)
