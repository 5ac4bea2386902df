"""Istio attributes of one ext_authz check: Envoy's ``CheckRequest`` turned into the nested maps that Mixer
policies' CEL expressions read (the vocabulary is documented in ``pilot/config/expressions.py``).

Envoy's HTTP ext_authz filter (``envoy.service.auth.v3.AttributeContext``) reports the downstream peer
(``source``: its socket address, and with mutual TLS the URI SAN of its certificate as ``principal``), the local
side (``destination``: the listener address, the sidecar's own certificate SAN), the HTTP request (method, path,
host, scheme, protocol, ``x-request-id`` as ``id``, lower-cased headers) and the TLS session's SNI. As Istio's
Mixer did with its Kubernetes adapter, the addresses are resolved to workloads and to the service port through
the mesh snapshot (``mixer.registry``): every workload has its own address, so the peer address names the caller.
In a pod these are the real addresses: ``source.ip`` the caller's pod IP, ``destination.ip`` and
``destination.port`` the connection's original destination (the called pod's IP and the port the caller dialled).

Every attribute of the vocabulary (``pilot.config.expressions.ATTRIBUTES``) is always present: what Envoy did not
send or the registry does not know is ``""``, ``0``, ``{}`` or ``false``; only the entries of the maps (a header, a
label) can be absent. This runs once per request, so it builds plain dicts and converts nothing it does not need:
``CheckAttributes`` builds each of the four roots only when a check first reads it (an allowed check whose
policies read only ``request.headers`` never resolves the source and destination workloads), and
``check_attributes`` is all four at once.

``socket_address`` is shared with the access-log side (``mixer.log_entries``); a principal is split with Citadel's
SPIFFE parser (``meshplane.identity.parse_spiffe_id``), the one that wrote it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from envoy.config.core.v3.address_pb2 import Address
from envoy.service.auth.v3.attribute_context_pb2 import AttributeContext
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest

from meshplane.identity import parse_spiffe_id
from mixer.registry import WorkloadInfo, WorkloadRegistry, principal_of
from pilot.model.types import ServiceInstance

__all__ = [
    "CheckAttributes",
    "check_attributes",
    "principal_parts",
    "request_headers",
    "service_attributes",
    "socket_address",
    "workload_attributes",
]

_NO_LABELS: Mapping[str, str] = MappingProxyType({})


def socket_address(address: Address) -> tuple[str, int]:
    """The IP and port of an Envoy ``Address`` (``("", 0)`` for a pipe or an unset address)."""
    if not address.HasField("socket_address"):
        return "", 0
    socket = address.socket_address
    return socket.address, socket.port_value


def principal_parts(principal: str) -> tuple[str, str]:
    """The namespace and service account of an Istio principal (``cluster.local/ns/<ns>/sa/<sa>``); ``("", "")``
    for anything else."""
    try:
        _, namespace, service_account = parse_spiffe_id(f"spiffe://{principal}")
    except ValueError:
        return "", ""
    return namespace, service_account


def workload_attributes(info: WorkloadInfo | None) -> tuple[dict[str, str], Mapping[str, str]]:
    """``(workload, labels)`` of a source or destination: ``{"name", "namespace"}`` and the workload's labels."""
    if info is None:
        return {"name": "", "namespace": ""}, _NO_LABELS
    return {"name": info.name, "namespace": info.namespace}, info.labels


def service_attributes(instance: ServiceInstance | None) -> dict[str, str]:
    """``destination.service``: the FQDN of the service port, its short name (first label) and namespace."""
    if instance is None:
        return {"host": "", "name": "", "namespace": ""}
    host = instance.service.host
    return {"host": host, "name": host.split(".", 1)[0], "namespace": instance.service.namespace}


def request_headers(http: AttributeContext.HttpRequest) -> dict[str, str]:
    """The request headers with lower-case names: Envoy's ``headers`` map, or its ``header_map`` when the filter
    sends raw headers (``encode_raw_headers``), where repeated headers are joined with ``,`` as HTTP allows."""
    sent = http.headers
    if sent:  # read by key, not items(): upb's map has no items() of its own, the ABC's ItemsView is 3x slower
        return {name.lower(): sent[name] for name in sent}
    headers: dict[str, str] = {}
    for header in http.header_map.headers:
        name = header.key.lower()
        value = header.value or header.raw_value.decode("utf-8", "replace")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


class CheckAttributes(Mapping[str, Any]):
    """The attributes of one CheckRequest as a read-only map of the four roots (``source``, ``destination``,
    ``request``, ``connection``), each built on first read and kept; ``destination_ip`` without building any."""

    __slots__ = ("_context", "_registry", "_roots", "destination_ip", "destination_port")

    def __init__(self, request: CheckRequest, registry: WorkloadRegistry) -> None:
        self._context = request.attributes
        self._registry = registry
        self._roots: dict[str, dict[str, Any]] = {}
        self.destination_ip, self.destination_port = socket_address(self._context.destination.address)

    def __getitem__(self, root: str) -> dict[str, Any]:
        built = self._roots.get(root)
        if built is None:
            built = self._roots[root] = _ROOT_BUILDERS[root](self._context, self._registry, self)
        return built

    def __iter__(self) -> Iterator[str]:
        return iter(_ROOT_BUILDERS)

    def __len__(self) -> int:
        return len(_ROOT_BUILDERS)


def _source(context: AttributeContext, registry: WorkloadRegistry, _: CheckAttributes) -> dict[str, Any]:
    source_ip, source_port = socket_address(context.source.address)
    source_principal = principal_of(context.source.principal)
    source_info = registry.workload_at(source_ip) if source_ip else None
    source_workload, source_labels = workload_attributes(source_info)
    if source_info is not None:
        source_namespace, source_account = source_info.namespace, source_info.service_account
    else:
        source_namespace, source_account = principal_parts(source_principal)
    return {
        "ip": source_ip,
        "port": source_port,
        "principal": source_principal,
        "namespace": source_namespace,
        "service_account": source_account,
        "workload": source_workload,
        "labels": source_labels,
    }


def _destination(context: AttributeContext, registry: WorkloadRegistry, check: CheckAttributes) -> dict[str, Any]:
    destination_ip, destination_port = check.destination_ip, check.destination_port
    destination_info = registry.workload_at(destination_ip) if destination_ip else None
    destination_workload, destination_labels = workload_attributes(destination_info)
    instance = registry.instance_at(destination_ip, destination_port) if destination_ip else None
    return {
        "ip": destination_ip,
        "port": destination_port,
        "principal": principal_of(context.destination.principal),
        "service": service_attributes(instance),
        "workload": destination_workload,
        "labels": destination_labels,
    }


def _request(context: AttributeContext, registry: WorkloadRegistry, _: CheckAttributes) -> dict[str, Any]:
    http = context.request.http
    headers = request_headers(http)
    return {
        "method": http.method,
        "path": http.path,
        "host": http.host or headers.get(":authority", ""),
        "scheme": http.scheme,
        "protocol": http.protocol,
        "id": http.id or headers.get("x-request-id", ""),
        "useragent": headers.get("user-agent", ""),
        "headers": headers,
    }


def _connection(context: AttributeContext, registry: WorkloadRegistry, _: CheckAttributes) -> dict[str, Any]:
    return {
        "mtls": bool(principal_of(context.source.principal) or context.source.certificate),
        "requested_server_name": context.tls_session.sni,
    }


_ROOT_BUILDERS: dict[str, Callable[[AttributeContext, WorkloadRegistry, CheckAttributes], dict[str, Any]]] = {
    "source": _source,
    "destination": _destination,
    "request": _request,
    "connection": _connection,
}


def check_attributes(request: CheckRequest, registry: WorkloadRegistry) -> dict[str, Any]:
    """The attributes of ``request``, the source and destination resolved through ``registry``: all four roots."""
    return dict(CheckAttributes(request, registry))
