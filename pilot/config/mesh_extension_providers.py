"""MeshConfig ``extensionProviders``: the named providers policies refer to (Istio ``MeshConfig.ExtensionProvider``).

Each entry has a ``name`` (unique, required) and exactly one provider type field. What each type becomes is a
frozen dataclass subclassing :class:`ExtensionProvider`, with its Istio type field name as ``kind``;
``MeshSettings.extension_providers`` holds them in file order and a policy looks one up by name
(``extension_provider``).

Types are read by the readers in :data:`PROVIDER_READERS` (type field -> reader). This module reads the external
authorizers AuthorizationPolicy CUSTOM calls (Istio ``authz/builder/extauthz.go``):

- ``envoyExtAuthzHttp``: ``service``, ``port``, ``timeout`` (default 10m, as Istio), ``pathPrefix`` (must begin with
  ``/``), ``failOpen``, ``statusOnError``, ``includeRequestHeadersInCheck`` (and the deprecated
  ``includeHeadersInCheck``, used only when the former is not set), ``includeAdditionalHeadersInCheck``,
  ``includeRequestBodyInCheck``, ``headersToUpstreamOnAllow``, ``headersToDownstreamOnDeny``,
  ``headersToDownstreamOnAllow``. Header names may start or end with ``*`` (a suffix or prefix match).
- ``envoyExtAuthzGrpc``: ``service``, ``port``, ``timeout``, ``failOpen``, ``statusOnError``,
  ``includeRequestBodyInCheck``.

``service`` is ``<host>`` or ``<namespace>/<host>`` (Istio's forms); whether a service of the registry has that host
is known only when a policy is compiled (``pilot.generate.ext_authz``). ``port`` is an integer or a string of
digits (Istio's docs write ``port: "8000"``). ``statusOnError`` is an HTTP status code Envoy knows, as a string.

A type another part of meshplane reads (telemetry providers) adds its reader to :data:`PROVIDER_READERS`; a type
nobody reads is rejected with "not supported by meshplane yet", as every MeshConfig field meshplane ignores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from envoy.type.v3.http_status_pb2 import StatusCode

from pilot.config.errors import quote
from pilot.config.validate_common import Fields
from pilot.config.validate_names import dns1123_label_error, host_error

__all__ = [
    "DEFAULT_EXT_AUTHZ_TIMEOUT_SECONDS",
    "ENVOY_EXT_AUTHZ_GRPC",
    "ENVOY_EXT_AUTHZ_HTTP",
    "PROVIDER_READERS",
    "PROVIDER_UNSUPPORTED",
    "ExtAuthzGrpcProvider",
    "ExtAuthzHttpProvider",
    "ExtAuthzRequestBody",
    "ExtensionProvider",
    "ProviderReader",
    "extension_provider",
    "provider_port",
    "provider_service",
    "read_extension_providers",
    "split_provider_service",
]

ENVOY_EXT_AUTHZ_HTTP = "envoyExtAuthzHttp"
ENVOY_EXT_AUTHZ_GRPC = "envoyExtAuthzGrpc"
DEFAULT_EXT_AUTHZ_TIMEOUT_SECONDS = 600.0  # Istio's default (10m) between ext_authz and the provider

# Istio's ExtensionProvider types (the oneof); those without a reader in PROVIDER_READERS are not supported yet
ISTIO_PROVIDER_TYPES = (
    ENVOY_EXT_AUTHZ_HTTP, ENVOY_EXT_AUTHZ_GRPC, "zipkin", "lightstep", "datadog", "stackdriver", "opencensus",
    "skywalking", "opentelemetry", "prometheus", "envoyFileAccessLog", "envoyHttpAls", "envoyTcpAls", "envoyOtelAls",
    "sds",
)  # fmt: skip
_STATUS_CODES = frozenset(code for code in StatusCode.values() if code != 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtensionProvider:
    """One ``extensionProviders`` entry; subclasses are its types (``kind``: Istio's type field name)."""

    kind: ClassVar[str] = ""
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtAuthzRequestBody:
    """``includeRequestBodyInCheck`` (Envoy's ``BufferSettings``)."""

    max_request_bytes: int = 0
    allow_partial_message: bool = False
    pack_as_bytes: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtAuthzGrpcProvider(ExtensionProvider):
    kind: ClassVar[str] = ENVOY_EXT_AUTHZ_GRPC
    service: str  # "<host>" or "<namespace>/<host>"
    port: int
    timeout: float = DEFAULT_EXT_AUTHZ_TIMEOUT_SECONDS
    fail_open: bool = False
    status_on_error: int | None = None
    request_body: ExtAuthzRequestBody | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtAuthzHttpProvider(ExtensionProvider):
    kind: ClassVar[str] = ENVOY_EXT_AUTHZ_HTTP
    service: str
    port: int
    timeout: float = DEFAULT_EXT_AUTHZ_TIMEOUT_SECONDS
    fail_open: bool = False
    status_on_error: int | None = None
    request_body: ExtAuthzRequestBody | None = None
    path_prefix: str = ""
    request_headers: tuple[str, ...] = ()  # includeRequestHeadersInCheck (or includeHeadersInCheck)
    additional_headers: tuple[tuple[str, str], ...] = ()  # includeAdditionalHeadersInCheck, sorted by name
    headers_to_upstream_on_allow: tuple[str, ...] = ()
    headers_to_downstream_on_deny: tuple[str, ...] = ()
    headers_to_downstream_on_allow: tuple[str, ...] = ()


ProviderReader = Callable[[str, Fields], ExtensionProvider | None]  # (name, the type's fields) -> provider


def split_provider_service(service: str) -> tuple[str | None, str]:
    """``<namespace>/<host>`` -> (namespace, host); ``<host>`` -> (None, host)."""
    namespace, _, host = service.rpartition("/")
    return (namespace or None), host


def extension_provider(providers: tuple[ExtensionProvider, ...], name: str) -> ExtensionProvider | None:
    return next((provider for provider in providers if provider.name == name), None)


_BODY_FIELDS = ("maxRequestBytes", "allowPartialMessage", "packAsBytes")
_GRPC_FIELDS = ("service", "port", "timeout", "failOpen", "statusOnError", "includeRequestBodyInCheck")
_HTTP_HEADER_LISTS = (
    "includeRequestHeadersInCheck", "includeHeadersInCheck", "headersToUpstreamOnAllow", "headersToDownstreamOnDeny",
    "headersToDownstreamOnAllow",
)  # fmt: skip
_HTTP_FIELDS = (*_GRPC_FIELDS, "pathPrefix", "includeAdditionalHeadersInCheck", *_HTTP_HEADER_LISTS)


def provider_service(fields: Fields) -> str | None:
    """Istio ``validateExtensionProviderService``: ``<host>`` or ``<namespace>/<host>``."""
    service = fields.string("service", required=True)
    if service is None:
        return None
    parts = service.split("/")
    if len(parts) > 2:
        fields.report("service", f"invalid service {quote(service)}: expected <host> or <namespace>/<host>")
        return None
    if len(parts) == 2:
        fields.problems.add_if(fields.at("service"), dns1123_label_error(parts[0], "namespace"))
    error = host_error(parts[-1], wildcard=False)
    fields.problems.add_if(fields.at("service"), error)
    return service


def provider_port(fields: Fields) -> int | None:
    value = fields.node.get("port")
    if value is None:
        fields.report("port", "required field is missing")
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        fields.report("port", f"port must be in the range [1, 65535], found: {value!r}")
        return None
    return value


def _status_on_error(fields: Fields) -> int | None:
    status = fields.string("statusOnError")
    if not status:
        return None
    if not (status.isascii() and status.isdigit()) or int(status) not in _STATUS_CODES:
        fields.report("statusOnError", f"unsupported statusOnError {quote(status)}: expected an HTTP status code")
        return None
    return int(status)


def _request_body(fields: Fields) -> ExtAuthzRequestBody | None:
    body = fields.mapping("includeRequestBodyInCheck", known=_BODY_FIELDS)
    if body is None:
        return None
    return ExtAuthzRequestBody(
        max_request_bytes=body.integer("maxRequestBytes", minimum=0, maximum=2**32 - 1) or 0,
        allow_partial_message=body.boolean("allowPartialMessage") or False,
        pack_as_bytes=body.boolean("packAsBytes") or False,
    )


def _headers(fields: Fields, name: str) -> tuple[str, ...]:
    headers = fields.strings(name) or ()
    for index, header in enumerate(headers):
        if header.strip("*") == "":
            fields.problems.add(fields.at(name, index), f"invalid header {quote(header)}: name a header")
    return headers


def _common(fields: Fields) -> dict[str, Any]:
    """The fields both ext_authz types have, as keyword arguments (service and port None when unusable)."""
    timeout = fields.timeout("timeout")
    return {
        "service": provider_service(fields),
        "port": provider_port(fields),
        "timeout": DEFAULT_EXT_AUTHZ_TIMEOUT_SECONDS if timeout is None else timeout,
        "fail_open": fields.boolean("failOpen") or False,
        "status_on_error": _status_on_error(fields),
        "request_body": _request_body(fields),
    }


def _read_grpc(name: str, fields: Fields) -> ExtensionProvider | None:
    common = _common(fields)
    if common["service"] is None or common["port"] is None:
        return None
    return ExtAuthzGrpcProvider(name=name, **common)


def _read_http(name: str, fields: Fields) -> ExtensionProvider | None:
    common = _common(fields)
    path_prefix = fields.string("pathPrefix") or ""
    if path_prefix and not path_prefix.startswith("/"):
        fields.report("pathPrefix", f"pathPrefix must begin with `/`, found: {quote(path_prefix)}")
    headers = {name: _headers(fields, name) for name in _HTTP_HEADER_LISTS}
    additional = fields.string_map("includeAdditionalHeadersInCheck") or {}
    if common["service"] is None or common["port"] is None:
        return None
    return ExtAuthzHttpProvider(
        name=name,
        **common,
        path_prefix=path_prefix,
        request_headers=headers["includeRequestHeadersInCheck"] or headers["includeHeadersInCheck"],
        additional_headers=tuple(sorted(additional.items())),
        headers_to_upstream_on_allow=headers["headersToUpstreamOnAllow"],
        headers_to_downstream_on_deny=headers["headersToDownstreamOnDeny"],
        headers_to_downstream_on_allow=headers["headersToDownstreamOnAllow"],
    )


# type field -> (its known fields, its reader); another provider type adds its entry here (the telemetry types:
# ``pilot.config.mesh_telemetry_providers``), with its Istio fields it does not read in PROVIDER_UNSUPPORTED
PROVIDER_READERS: dict[str, tuple[tuple[str, ...], ProviderReader]] = {
    ENVOY_EXT_AUTHZ_HTTP: (_HTTP_FIELDS, _read_http),
    ENVOY_EXT_AUTHZ_GRPC: (_GRPC_FIELDS, _read_grpc),
}
PROVIDER_UNSUPPORTED: dict[str, tuple[str, ...]] = {}


def _read_entry(entry: Fields, seen: set[str]) -> ExtensionProvider | None:
    name = entry.string("name", required=True)
    if name == "":
        entry.report("name", "extension provider name must not be empty")
    elif name is not None and name in seen:
        entry.report("name", f"extension provider name must be unique, found duplicate: {quote(name)}")
    if name:
        seen.add(name)
    kind = entry.exclusive(ISTIO_PROVIDER_TYPES, required=True)
    if kind is None or kind not in PROVIDER_READERS or not name:  # an unread type is reported by Fields.open
        return None
    known, reader = PROVIDER_READERS[kind]
    fields = entry.mapping(kind, known=known, unsupported=PROVIDER_UNSUPPORTED.get(kind, ()))
    return reader(name, fields) if fields is not None else None


def read_extension_providers(top: Fields) -> tuple[ExtensionProvider, ...]:
    """MeshConfig's ``extensionProviders`` (problems reported on ``top``'s Problems; bad entries left out)."""
    seen: set[str] = set()
    unsupported = tuple(kind for kind in ISTIO_PROVIDER_TYPES if kind not in PROVIDER_READERS)
    entries = top.mappings("extensionProviders", known=("name", *PROVIDER_READERS), unsupported=unsupported)
    providers = (_read_entry(entry, seen) for entry in entries)
    return tuple(provider for provider in providers if provider is not None)
