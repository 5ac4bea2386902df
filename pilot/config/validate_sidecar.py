"""Validate a Sidecar spec into ``types.Sidecar`` (Istio's ``ValidateSidecar``, ``pkg/config/validation``).

- ``workloadSelector.labels``: Kubernetes label syntax (so no wildcards); an empty selector selects the whole
  namespace, as in Istio (which warns about it).
- ``egress[]``: each listener has at least one host ``<namespace>/<dnsName>`` (Istio's
  ``ValidateNamespaceSlashWildcardHostname``): namespace ``*``, ``.``, ``~`` or a namespace name; dnsName ``*``,
  ``*.suffix`` or a host name. A listener without ``port`` is the catch-all one: at most one, and last. Ports are
  unique. ``port.number`` 1-65535, ``port.protocol`` one of Istio's (required, as Istio's ``ValidateProtocol``),
  ``port.name`` a port name; ``port.targetPort`` is an error (Istio: "targetPort has no impact on Sidecars").
  ``bind`` and ``captureMode`` other than DEFAULT/IPTABLES (how meshplane's pods capture) are not supported yet.
- ``outboundTrafficPolicy.mode``: ALLOW_ANY or REGISTRY_ONLY (ALLOW_ANY when absent, as Istio's enum default);
  ``egressProxy`` is not supported yet.
- ``ingress`` and ``inboundConnectionPool``: not supported yet.
- A spec with nothing set is an error (Istio: "sidecar: empty configuration provided").

Which Sidecar applies to a proxy (selector beats namespace default beats the root namespace's) is the model's job
(``pilot.model.sidecar_scope``): it takes more than one resource to see a conflict.
"""

from __future__ import annotations

from typing import cast

from pilot.config.errors import quote
from pilot.config.istio_api import fields_except
from pilot.config.types import (
    ConfigMeta,
    Labels,
    Protocol,
    Sidecar,
    SidecarEgressListener,
    SidecarHost,
    SidecarOutboundMode,
    SidecarPort,
    frozen_labels,
)
from pilot.config.validate_common import Fields
from pilot.config.validate_names import dns1123_label_error, host_error

__all__ = [
    "SIDECAR_FIELDS",
    "SIDECAR_UNSUPPORTED",
    "parse_sidecar_host",
    "validate_sidecar",
]

SIDECAR_UNSUPPORTED: tuple[str, ...] = ()  # ingress, inboundConnectionPool: not read (istio_api says why)
SIDECAR_FIELDS = fields_except("Sidecar", "ingress", "inboundConnectionPool")
_EGRESS_FIELDS = fields_except("IstioEgressListener", "bind")
_PORT_FIELDS = ("number", "protocol", "name", "targetPort")
_POLICY_FIELDS = fields_except("OutboundTrafficPolicy", "egressProxy")
_PROTOCOLS = tuple(p.value for p in Protocol if p is not Protocol.UNKNOWN)
_CAPTURE_MODES = ("DEFAULT", "IPTABLES", "NONE")
_CAPTURED = ("DEFAULT", "IPTABLES")  # what meshplane's pods do: iptables REDIRECT to the sidecar
_MODES = ("ALLOW_ANY", "REGISTRY_ONLY")
_HOST_FORM = "<namespace>/<dnsName>, like ./* or istio-system/*"


def validate_sidecar(spec: Fields, meta: ConfigMeta) -> Sidecar:
    """Check a Sidecar spec (opened with ``SIDECAR_FIELDS``); problems go to ``spec.problems``."""
    if not any(spec.has(name) for name in ("egress", "ingress", "outboundTrafficPolicy", "inboundConnectionPool")):
        spec.report(None, "sidecar: empty configuration provided (set egress, ingress or outboundTrafficPolicy)")
    return Sidecar(
        meta=meta,
        workload_selector=_workload_selector(spec),
        egress=_egress(spec),
        outbound_traffic_policy=_outbound_mode(spec),
    )


def parse_sidecar_host(value: str) -> tuple[SidecarHost | None, str | None]:
    """(host, None) for a valid ``<namespace>/<dnsName>``, else (None, the problem)."""
    namespace, slash, host = value.partition("/")
    if not slash or not namespace or not host:
        return None, f"invalid host {quote(value)}: must be of the form {_HOST_FORM}"
    if namespace not in ("*", ".", "~"):
        error = dns1123_label_error(namespace, "namespace")
        if error is not None:
            return None, f"invalid host {quote(value)}: {error}"
    error = host_error(host)
    if error is not None:
        return None, f"invalid host {quote(value)}: {error}"
    return SidecarHost(namespace=namespace, host=host), None


def _workload_selector(spec: Fields) -> Labels | None:
    selector = spec.mapping("workloadSelector", known=("labels",), message="WorkloadSelector")
    if selector is None:
        return None
    labels = selector.labels("labels")  # the label syntax rules out wildcards (Istio's check)
    return frozen_labels(labels) if labels else None  # no labels: the whole namespace, as in Istio


def _egress(spec: Fields) -> tuple[SidecarEgressListener, ...]:
    listeners: list[SidecarEgressListener] = []
    items = spec.mappings("egress", known=_EGRESS_FIELDS, message="IstioEgressListener")
    ports: set[int] = set()
    catch_all = False
    for index, item in enumerate(items):
        port = _port(item) if item.has("port") else None
        if not item.has("port"):
            if catch_all:
                item.report(None, "sidecar: egress can have only one listener with empty port")
            elif index != len(items) - 1:
                item.report(
                    None, "sidecar: the egress listener with empty port should be the last listener in the list"
                )
            catch_all = True
        elif port is not None:
            if port.number in ports:
                item.report("port", "sidecar: ports on IP bound listeners must be unique")
            ports.add(port.number)
        _capture_mode(item)
        listeners.append(SidecarEgressListener(port=port, hosts=_hosts(item)))
    return tuple(listeners)


def _port(item: Fields) -> SidecarPort | None:
    port = item.mapping("port", known=_PORT_FIELDS, message="SidecarPort")
    if port is None:
        return None
    number = port.integer("number", minimum=1, maximum=65535, required=True)
    protocol = port.enum("protocol", _PROTOCOLS, ignore_case=True)
    if not port.has("protocol"):
        port.report("protocol", f"required field is missing (one of {', '.join(_PROTOCOLS)})")
    name = port.string("name") or ""
    if name:
        port.problems.add_if(port.at("name"), dns1123_label_error(name, "port name"))
    if port.has("targetPort"):
        port.report(
            "targetPort", "not supported by meshplane yet: targetPort has no impact on Sidecars (Istio rejects it)"
        )
    if number is None or protocol is None:
        return None
    return SidecarPort(number=number, protocol=Protocol(protocol), name=name)


def _capture_mode(item: Fields) -> None:
    mode = item.enum("captureMode", _CAPTURE_MODES)
    if mode is not None and mode not in _CAPTURED:
        item.report(
            "captureMode",
            f"{mode} not supported by meshplane yet: its sidecars capture traffic with iptables (DEFAULT, IPTABLES)",
        )


def _hosts(item: Fields) -> tuple[SidecarHost, ...]:
    values = item.strings("hosts")
    if not values:
        if values is not None or not item.has("hosts"):
            item.report("hosts", "sidecar: egress listener must contain at least one host")
        return ()
    hosts: list[SidecarHost] = []
    for index, value in enumerate(values):
        host, error = parse_sidecar_host(value)
        if host is None:
            item.problems.add(item.at("hosts", index), error or f"invalid host {quote(value)}")
            continue
        hosts.append(host)
    return tuple(hosts)


def _outbound_mode(spec: Fields) -> SidecarOutboundMode | None:
    policy = spec.mapping("outboundTrafficPolicy", known=_POLICY_FIELDS, message="OutboundTrafficPolicy")
    if policy is None:
        return None
    return cast(SidecarOutboundMode, policy.enum("mode", _MODES) or "ALLOW_ANY")
