"""Envoy's ext_authz filter for a MeshConfig extension provider (Istio ``authz/builder/extauthz.go``).

``provider_ext_authz(name, snapshot)`` looks the provider up in ``MeshSettings.extension_providers`` and resolves its
``service`` (``<host>`` or ``<namespace>/<host>``) to a service of the registry having ``port``: ext_authz then calls
it through that service's outbound cluster ``outbound|<port>||<host>``, so the call gets the mesh's mTLS, load
balancing and DestinationRule like any other call of the sidecar. When the provider cannot be used (no such
provider, a type CUSTOM cannot call, no such service or port), it returns the reason instead and the caller fails
closed (``pilot.generate.authz_filters``).

Both types get, as Istio: ``transport_api_version`` V3, ``failure_mode_allow`` = ``failOpen``, ``status_on_error``
from ``statusOnError`` (unset: Envoy's 403), ``with_request_body`` from ``includeRequestBodyInCheck`` and
``filter_enabled_metadata`` on the CUSTOM rules' shadow RBAC result (the provider is called only for requests the
CUSTOM rules match).

- gRPC: ``grpc_service.envoy_grpc`` to the cluster, ``authority`` the cluster name with ``|`` replaced by ``_.``
  (``|`` is not valid in an authority; Istio's workaround), ``timeout`` the provider's.
- HTTP: ``http_service.server_uri`` (``uri`` ``http://<host>``, ``cluster``, ``timeout``), ``path_prefix``,
  ``authorization_request.headers_to_add`` from ``includeAdditionalHeadersInCheck``, ``authorization_response``
  (``allowed_upstream_headers``, ``allowed_client_headers``, ``allowed_client_headers_on_success``) and the
  filter's ``allowed_headers`` from ``includeRequestHeadersInCheck``. Header patterns: ``*x`` is a suffix match,
  ``x*`` a prefix match, anything else exact; all ignore case.

On TCP ports (``provider_network_ext_authz``), as Istio: a gRPC provider gets Envoy's network ext_authz (stat prefix
``tcp.``, the same ``grpc_service``, ``failure_mode_allow``, V3, ``filter_enabled_metadata`` on the *network* RBAC
filter's shadow result); an HTTP provider cannot check a TCP connection. Istio then skips the check; meshplane
reports it (``LookupError``) and the caller fails closed.
"""

from __future__ import annotations

from datetime import timedelta

from envoy.config.core.v3.base_pb2 import HeaderValue
from envoy.config.core.v3.config_source_pb2 import ApiVersion
from envoy.config.core.v3.grpc_service_pb2 import GrpcService
from envoy.config.core.v3.http_uri_pb2 import HttpUri
from envoy.extensions.filters.http.ext_authz.v3.ext_authz_pb2 import (
    AuthorizationRequest,
    AuthorizationResponse,
    BufferSettings,
    ExtAuthz,
    HttpService,
)
from envoy.extensions.filters.network.ext_authz.v3.ext_authz_pb2 import ExtAuthz as NetworkExtAuthz
from envoy.type.matcher.v3.metadata_pb2 import MetadataMatcher
from envoy.type.matcher.v3.string_pb2 import ListStringMatcher, StringMatcher
from envoy.type.v3.http_status_pb2 import HttpStatus

from meshplane import names
from pilot.config.mesh_extension_providers import (
    ExtAuthzGrpcProvider,
    ExtAuthzHttpProvider,
    ExtAuthzRequestBody,
    split_provider_service,
)
from pilot.generate.rbac import EXT_AUTHZ_MATCH_PREFIX
from pilot.generate.service_cluster import lookup_cluster
from pilot.model.types import MeshSnapshot

__all__ = [
    "EXT_AUTHZ_SHADOW_PREFIX",
    "SHADOW_EFFECTIVE_POLICY_ID",
    "build_grpc_provider_ext_authz",
    "build_http_provider_ext_authz",
    "custom_rules_matched",
    "header_matchers",
    "provider_cluster",
    "provider_ext_authz",
    "provider_network_ext_authz",
]

EXT_AUTHZ_SHADOW_PREFIX = "istio_ext_authz_"  # Istio's RBACExtAuthzShadowRulesStatPrefix (stats and metadata key)
SHADOW_EFFECTIVE_POLICY_ID = "shadow_effective_policy_id"  # Envoy's RBAC dynamic metadata key (after the prefix)


TCP_STAT_PREFIX = "tcp."  # Istio's network ext_authz stat prefix


def custom_rules_matched(rbac_filter: str = names.RBAC_FILTER) -> MetadataMatcher:
    """``filter_enabled_metadata``: the CUSTOM rules' shadow RBAC (``rbac_filter``: the HTTP one, or the network
    one on TCP ports) matched (its policy id starts with ``istio-ext-authz``)."""
    return MetadataMatcher(
        filter=rbac_filter,
        path=[MetadataMatcher.PathSegment(key=EXT_AUTHZ_SHADOW_PREFIX + SHADOW_EFFECTIVE_POLICY_ID)],
        value={"string_match": StringMatcher(prefix=EXT_AUTHZ_MATCH_PREFIX)},
    )


def header_matchers(headers: tuple[str, ...]) -> ListStringMatcher:
    """Istio ``generateHeaders``: ``*x`` suffix, ``x*`` prefix, else exact; ignoring case."""
    patterns = []
    for header in headers:
        if header.startswith("*"):
            patterns.append(StringMatcher(suffix=header[1:], ignore_case=True))
        elif header.endswith("*"):
            patterns.append(StringMatcher(prefix=header[:-1], ignore_case=True))
        else:
            patterns.append(StringMatcher(exact=header, ignore_case=True))
    return ListStringMatcher(patterns=patterns)


def provider_cluster(provider: ExtAuthzHttpProvider | ExtAuthzGrpcProvider, snapshot: MeshSnapshot) -> str:
    """The outbound cluster of the provider's service and port; ``LookupError`` (the reason) when there is none."""
    namespace, host = split_provider_service(provider.service)
    return lookup_cluster(snapshot, host, provider.port, namespace=namespace)


def _body(body: ExtAuthzRequestBody | None) -> BufferSettings | None:
    if body is None:
        return None
    return BufferSettings(
        max_request_bytes=body.max_request_bytes,
        allow_partial_message=body.allow_partial_message,
        pack_as_bytes=body.pack_as_bytes,
    )


def _common(provider: ExtAuthzHttpProvider | ExtAuthzGrpcProvider) -> ExtAuthz:
    config = ExtAuthz(
        transport_api_version=ApiVersion.V3,
        failure_mode_allow=provider.fail_open,
        filter_enabled_metadata=custom_rules_matched(),
    )
    if provider.status_on_error is not None:
        config.status_on_error.CopyFrom(HttpStatus(code=provider.status_on_error))
    if (body := _body(provider.request_body)) is not None:
        config.with_request_body.CopyFrom(body)
    return config


def _grpc_service(provider: ExtAuthzGrpcProvider, cluster: str) -> GrpcService:
    return GrpcService(
        envoy_grpc=GrpcService.EnvoyGrpc(cluster_name=cluster, authority=cluster.replace("|", "_.")),
        timeout=timedelta(seconds=provider.timeout),
    )


def build_grpc_provider_ext_authz(provider: ExtAuthzGrpcProvider, cluster: str) -> ExtAuthz:
    config = _common(provider)
    config.grpc_service.CopyFrom(_grpc_service(provider, cluster))
    return config


def build_grpc_provider_network_ext_authz(provider: ExtAuthzGrpcProvider, cluster: str) -> NetworkExtAuthz:
    return NetworkExtAuthz(
        stat_prefix=TCP_STAT_PREFIX,
        grpc_service=_grpc_service(provider, cluster),
        failure_mode_allow=provider.fail_open,
        transport_api_version=ApiVersion.V3,
        filter_enabled_metadata=custom_rules_matched(names.RBAC_NETWORK_FILTER),
    )


def build_http_provider_ext_authz(provider: ExtAuthzHttpProvider, cluster: str) -> ExtAuthz:
    _, host = split_provider_service(provider.service)
    service = HttpService(
        server_uri=HttpUri(uri=f"http://{host}", cluster=cluster, timeout=timedelta(seconds=provider.timeout)),
        path_prefix=provider.path_prefix,
    )
    if provider.additional_headers:
        service.authorization_request.CopyFrom(
            AuthorizationRequest(
                headers_to_add=[HeaderValue(key=key, value=value) for key, value in provider.additional_headers]
            )
        )
    response = AuthorizationResponse()
    for field, headers in (
        (response.allowed_upstream_headers, provider.headers_to_upstream_on_allow),
        (response.allowed_client_headers, provider.headers_to_downstream_on_deny),
        (response.allowed_client_headers_on_success, provider.headers_to_downstream_on_allow),
    ):
        if headers:
            field.CopyFrom(header_matchers(headers))
    if response.ListFields():
        service.authorization_response.CopyFrom(response)
    config = _common(provider)
    config.http_service.CopyFrom(service)
    if provider.request_headers:
        config.allowed_headers.CopyFrom(header_matchers(provider.request_headers))
    return config


def _ext_authz_provider(name: str, snapshot: MeshSnapshot) -> ExtAuthzGrpcProvider | ExtAuthzHttpProvider:
    provider = snapshot.mesh.extension_provider(name)
    if provider is None:
        known = sorted(p.name for p in snapshot.mesh.extension_providers if isinstance(p, _EXT_AUTHZ_TYPES))
        raise LookupError(f"extension provider {name} not found, available providers are {known}")
    if not isinstance(provider, _EXT_AUTHZ_TYPES):
        raise LookupError(f"extension provider {name} is a {provider.kind} provider, not an external authorizer")
    return provider


def provider_ext_authz(name: str, snapshot: MeshSnapshot) -> ExtAuthz:
    """The ext_authz config calling the extension provider ``name``; ``LookupError`` (the reason) when it cannot."""
    provider = _ext_authz_provider(name, snapshot)
    if isinstance(provider, ExtAuthzGrpcProvider):
        return build_grpc_provider_ext_authz(provider, provider_cluster(provider, snapshot))
    return build_http_provider_ext_authz(provider, provider_cluster(provider, snapshot))


def provider_network_ext_authz(name: str, snapshot: MeshSnapshot) -> NetworkExtAuthz:
    """The network ext_authz config calling the gRPC extension provider ``name`` for a TCP port; ``LookupError``
    (the reason) when it cannot (an HTTP provider cannot check a TCP connection)."""
    provider = _ext_authz_provider(name, snapshot)
    if isinstance(provider, ExtAuthzHttpProvider):
        raise LookupError(f"extension provider {name} is an envoyExtAuthzHttp provider: it cannot check TCP traffic")
    return build_grpc_provider_network_ext_authz(provider, provider_cluster(provider, snapshot))


_EXT_AUTHZ_TYPES = (ExtAuthzGrpcProvider, ExtAuthzHttpProvider)
