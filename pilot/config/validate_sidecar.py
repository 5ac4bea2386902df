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
  ``egressProxy`` (a Destination: host, optional subset, port required) only with ALLOW_ANY (Istio's
  ``validateSidecarOutboundTrafficPolicy``).
- ``ingress[]``: ``port`` required (the same checks as an egress port's), unique; ``defaultEndpoint`` unset,
  ``127.0.0.1:<port>``, ``0.0.0.0:<port>`` or ``unix://<absolute path or @abstract name>`` (Istio's forms; the
  IPv6 ones ``[::1]:<port>`` and ``[::]:<port>`` are not supported yet: pods have IPv4 addresses only);
  ``connectionPool`` as a DestinationRule's (Istio's ``validateConnectionPool``); ``tls`` as a gateway server's
  (``validateTLSOptions``), SIMPLE or MUTUAL with files, on HTTPS/TLS ports only, without subjectAltNames,
  httpsRedirect or credentialName (Istio's rules); ``bind`` and ``captureMode: NONE`` are not supported yet.
- ``inboundConnectionPool``: as a DestinationRule's connection pool.
- A spec with nothing set is an error (Istio: "sidecar: empty configuration provided").

Which Sidecar applies to a proxy (selector beats namespace default beats the root namespace's) is the model's job
(``pilot.model.sidecar_scope``): it takes more than one resource to see a conflict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from pilot.config.errors import quote
from pilot.config.istio_api import fields_except
from pilot.config.types import (
    ConfigMeta,
    Destination,
    Labels,
    Protocol,
    ServerTLSSettings,
    Sidecar,
    SidecarEgressListener,
    SidecarHost,
    SidecarIngressListener,
    SidecarOutboundMode,
    SidecarPort,
    frozen_labels,
)
from pilot.config.validate_common import Fields
from pilot.config.validate_destination_rule import read_connection_pool
from pilot.config.validate_gateway import read_server_tls
from pilot.config.validate_names import dns1123_label_error, host_error
from pilot.config.validate_tcp_tls_routes import read_destination

__all__ = [
    "SIDECAR_FIELDS",
    "SIDECAR_UNSUPPORTED",
    "parse_sidecar_host",
    "validate_sidecar",
]

SIDECAR_UNSUPPORTED: tuple[str, ...] = ()
SIDECAR_FIELDS = fields_except("Sidecar")
_EGRESS_FIELDS = fields_except("IstioEgressListener", "bind")
_INGRESS_FIELDS = fields_except("IstioIngressListener", "bind")
_INGRESS_TLS_MODES = ("SIMPLE", "MUTUAL")  # Istio: "currently supports only SIMPLE and MUTUAL TLS modes"
_LOOPBACK, _POD_IP = "127.0.0.1", "0.0.0.0"  # Istio's localhost and "the instance's IP" defaultEndpoint hosts
_UNIX = "unix://"
_ENDPOINT_FORM = "127.0.0.1:<port>, 0.0.0.0:<port>, unix://<path> or unset"
_PORT_FIELDS = ("number", "protocol", "name", "targetPort")
_POLICY_FIELDS = fields_except("OutboundTrafficPolicy")
_PROTOCOLS = tuple(p.value for p in Protocol if p is not Protocol.UNKNOWN)
_CAPTURE_MODES = ("DEFAULT", "IPTABLES", "NONE")
_CAPTURED = ("DEFAULT", "IPTABLES")  # what meshplane's pods do: iptables REDIRECT to the sidecar
_MODES = ("ALLOW_ANY", "REGISTRY_ONLY")
_HOST_FORM = "<namespace>/<dnsName>, like ./* or istio-system/*"


def validate_sidecar(spec: Fields, meta: ConfigMeta) -> Sidecar:
    """Check a Sidecar spec (opened with ``SIDECAR_FIELDS``); problems go to ``spec.problems``."""
    if not any(spec.has(name) for name in ("egress", "ingress", "outboundTrafficPolicy", "inboundConnectionPool")):
        spec.report(None, "sidecar: empty configuration provided (set egress, ingress or outboundTrafficPolicy)")
    mode, egress_proxy = _outbound_policy(spec)
    return Sidecar(
        meta=meta,
        workload_selector=_workload_selector(spec),
        egress=_egress(spec),
        ingress=_ingress(spec),
        inbound_connection_pool=read_connection_pool(spec, "inboundConnectionPool"),
        outbound_traffic_policy=mode,
        egress_proxy=egress_proxy,
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


def _ingress(spec: Fields) -> tuple[SidecarIngressListener, ...]:
    listeners: list[SidecarIngressListener] = []
    ports: set[int] = set()
    for item in spec.mappings("ingress", known=_INGRESS_FIELDS, message="IstioIngressListener"):
        if not item.has("port"):
            item.report("port", "sidecar: port is required for ingress listeners")
        port = _port(item) if item.has("port") else None
        if port is not None:
            if port.number in ports:
                item.report("port", "sidecar: ports on IP bound listeners must be unique")
            ports.add(port.number)
        _capture_mode(item)
        endpoint, socket = _default_endpoint(item)
        pool = read_connection_pool(item)
        tls = _ingress_tls(item, port)
        if port is not None:
            listeners.append(
                SidecarIngressListener(
                    port=port, default_endpoint=endpoint, default_socket=socket, connection_pool=pool, tls=tls
                )
            )
    return tuple(listeners)


def _ingress_tls(item: Fields, port: SidecarPort | None) -> ServerTLSSettings | None:
    """Istio's checks of an ingress listener's ``tls`` on top of a gateway server's."""
    tls = read_server_tls(item)
    if tls is None:
        return None
    if tls.subject_alt_names:
        item.report("tls", "sidecar: subjectAltNames is not supported in ingress tls")
    if tls.https_redirect:
        item.report("tls", "sidecar: httpsRedirect is not supported")
    if tls.credential_name:
        item.report("tls", "sidecar: credentialName is not currently supported")
    if tls.mode in ("ISTIO_MUTUAL", "AUTO_PASSTHROUGH"):
        item.report("tls", f"configuration is invalid: cannot set mode to {tls.mode} in sidecar ingress tls")
    elif tls.mode not in _INGRESS_TLS_MODES:
        item.report(
            "tls",
            f"mode {tls.mode} not supported by meshplane yet: Istio's sidecar ingress tls terminates SIMPLE and "
            "MUTUAL only",
        )
    if port is not None and port.protocol not in (Protocol.HTTPS, Protocol.TLS):
        item.report("tls", "server cannot have TLS settings for non HTTPS/TLS ports")
    return tls


def _default_endpoint(item: Fields) -> tuple[tuple[str, int] | None, str]:
    """(address, port) or the unix socket of ``defaultEndpoint`` (Istio's forms); (None, "") when unset."""
    value = item.string("defaultEndpoint") or ""
    if not value:
        return None, ""
    if value.startswith(_UNIX):
        socket = value.removeprefix(_UNIX)
        if not socket:
            item.report("defaultEndpoint", "unix address must not be empty")
        elif not socket.startswith("@") and (not socket.startswith("/") or socket.endswith("/")):
            item.report("defaultEndpoint", f"{quote(socket)} is not an absolute path to a file")
        else:
            return None, socket
        return None, ""
    host, colon, port_text = value.rpartition(":")
    if host in ("[::1]", "[::]"):
        item.report(
            "defaultEndpoint",
            f"{quote(value)} is not supported by meshplane yet: pods have IPv4 addresses only "
            f"(use {_LOOPBACK}:<port> or {_POD_IP}:<port>)",
        )
        return None, ""
    if not colon or host not in (_LOOPBACK, _POD_IP):
        item.report("defaultEndpoint", f"sidecar: defaultEndpoint must be of form {_ENDPOINT_FORM}")
        return None, ""
    if not port_text.isdigit():
        item.report("defaultEndpoint", f"sidecar: defaultEndpoint port ({port_text}) is not a number")
        return None, ""
    port = int(port_text)
    if not 1 <= port <= 65535:
        item.report("defaultEndpoint", f"port number {port} must be in the range 1..65535")
        return None, ""
    return (host, port), ""


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


def _outbound_policy(spec: Fields) -> tuple[SidecarOutboundMode | None, Destination | None]:
    """``outboundTrafficPolicy``: its mode and ``egressProxy`` (see the module doc)."""
    policy = spec.mapping("outboundTrafficPolicy", known=_POLICY_FIELDS, message="OutboundTrafficPolicy")
    if policy is None:
        return None, None
    mode = cast(SidecarOutboundMode, policy.enum("mode", _MODES) or "ALLOW_ANY")
    if not policy.has("egressProxy"):
        return mode, None
    if mode != "ALLOW_ANY":
        policy.report(
            "egressProxy", "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode"
        )
        return mode, None
    proxy = read_destination(policy, "egressProxy")
    if proxy is not None and proxy.port is None:
        raw = policy.node.get("egressProxy")
        if not (isinstance(raw, Mapping) and "port" in raw):
            policy.report("egressProxy", "sidecar: egress_proxy port must be non-nil")
        return mode, None
    return mode, proxy
