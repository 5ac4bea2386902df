"""RequestAuthentication -> Envoy's ``envoy.filters.http.jwt_authn`` on a sidecar's inbound HTTP ports (Istio
``authn/policy_applier.go`` ``convertToEnvoyJwtConfig``, with ``PILOT_JWT_ENABLE_REMOTE_JWKS=envoy``: Envoy fetches
the keys itself).

One provider per JWT rule that selects the workload (rules sorted by issuer, named ``origins-<i>``):

- ``issuer``, ``audiences``; ``forward`` (``forwardOriginalToken``), ``forward_payload_header``
  (``outputPayloadToHeader``), ``claim_to_headers`` (``outputClaimToHeaders``); ``from_headers`` (name and
  ``value_prefix``), ``from_params``, ``from_cookies`` (none of them: Envoy's defaults, ``Authorization: Bearer``
  and ``access_token``, which are Istio's);
- ``payload_in_metadata: payload``: the verified payload goes to the filter's dynamic metadata, where the RBAC
  filters after it match ``requestPrincipals`` and ``request.auth.*`` (``rbac.py``), with
  ``normalize_payload_in_metadata`` splitting the space-delimited claims (``scope``, ``permission`` and the rule's
  ``spaceDelimitedClaims``) into lists, as Istio does;
- the keys: ``jwks`` inline as ``local_jwks``; ``jwksUri`` as ``remote_jwks`` through the outbound cluster of the
  URI's host and port (``outbound|<port>||<host>``, port 80 / 443 by scheme), timeout ``timeout`` (Istio's 5 s),
  cached 5 minutes. When no service of the mesh has that host and port, the rule cannot be checked: an error is
  logged once per proxy (add a ServiceEntry for the host) and its keys are fetched from ``BlackHoleCluster``, so
  every token of that issuer is rejected (401) while requests without a token go on to AuthorizationPolicy: fail
  closed, as Istio's fake-cluster fallback.

The requirement is Istio's: with one provider ``requires_any [provider, allow_missing]``; with several
``requires_any [each provider, requires_all [requires_any [provider, allow_missing] for each]]``. A request
without a token passes (``allow_missing``) and is left to AuthorizationPolicy; a request with a token that does
not verify is rejected with 401. CORS preflights bypass it (``bypass_cors_preflight``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import structlog
from envoy.config.core.v3.base_pb2 import DataSource
from envoy.config.core.v3.http_uri_pb2 import HttpUri
from envoy.config.route.v3.route_components_pb2 import RouteMatch
from envoy.extensions.filters.http.jwt_authn.v3.config_pb2 import (
    JwtAuthentication,
    JwtClaimToHeader,
    JwtHeader,
    JwtProvider,
    JwtRequirement,
    JwtRequirementAndList,
    JwtRequirementOrList,
    RemoteJwks,
    RequirementRule,
)
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import HttpFilter
from google.protobuf.empty_pb2 import Empty

from meshplane import names
from pilot.config.types import JwtRule
from pilot.generate._protos import duration, http_filter
from pilot.generate.rbac import JWT_AUTHN_FILTER, JWT_PAYLOAD_METADATA_KEY
from pilot.generate.service_cluster import lookup_cluster
from pilot.model.request_authn import workload_jwt_rules
from pilot.model.types import MeshSnapshot, Proxy

__all__ = [
    "DEFAULT_JWKS_TIMEOUT_SECONDS",
    "JWKS_CACHE_SECONDS",
    "SPACE_DELIMITED_CLAIMS",
    "build_jwt_authentication",
    "build_jwt_authn_filters",
    "jwks_cluster",
]

log = structlog.get_logger(__name__)

DEFAULT_JWKS_TIMEOUT_SECONDS = 5.0  # Istio's default JWTRule.timeout
JWKS_CACHE_SECONDS = 5 * 60  # Istio's RemoteJwks cache_duration
SPACE_DELIMITED_CLAIMS = ("permission", "scope")  # Istio's defaults, always split
_SCHEME_PORTS = {"http": 80, "https": 443}

_warned: set[tuple[str, str]] = set()  # (proxy id, jwksUri) already logged


def jwks_cluster(uri: str, snapshot: MeshSnapshot) -> str | None:
    """The outbound cluster Envoy fetches ``uri`` through (Istio ``model.LookupCluster``), or None when no service
    of the mesh has the URI's host and port."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    port = parts.port or _SCHEME_PORTS.get(parts.scheme, 0)
    try:
        return lookup_cluster(snapshot, host, port)
    except LookupError:
        return None


def _set_keys(provider: JwtProvider, rule: JwtRule, proxy: Proxy, snapshot: MeshSnapshot) -> None:
    """``local_jwks`` (inline ``jwks``) or ``remote_jwks`` (``jwksUri``, see the module doc)."""
    if not rule.jwks_uri:
        provider.local_jwks.CopyFrom(DataSource(inline_string=rule.jwks))
        return
    cluster = jwks_cluster(rule.jwks_uri, snapshot)
    if cluster is None:
        _log_unresolved(proxy, rule.jwks_uri)
        cluster = names.BLACKHOLE_CLUSTER
    timeout = rule.timeout if rule.timeout is not None else DEFAULT_JWKS_TIMEOUT_SECONDS
    provider.remote_jwks.CopyFrom(
        RemoteJwks(
            http_uri=HttpUri(uri=rule.jwks_uri, cluster=cluster, timeout=duration(timeout)),
            cache_duration=duration(JWKS_CACHE_SECONDS),
        )
    )


def _log_unresolved(proxy: Proxy, uri: str) -> None:
    marker = (proxy.node.id, uri)
    if marker in _warned:
        return
    _warned.add(marker)
    log.error(
        "jwks_uri_has_no_cluster",
        proxy=marker[0],
        jwks_uri=uri,
        detail="no service of the mesh has this host and port: add a ServiceEntry for it; until then tokens of "
        "this issuer are rejected (401) and requests without a token are left to AuthorizationPolicy",
    )


def build_jwt_authentication(proxy: Proxy, snapshot: MeshSnapshot) -> JwtAuthentication | None:
    """The ``jwt_authn`` config for ``proxy``'s workload (see the module doc); None when no JWT rule selects it."""
    if proxy.workload is None:
        return None
    rules = workload_jwt_rules(snapshot, proxy.workload)
    if not rules:
        return None
    providers: dict[str, JwtProvider] = {}
    for index, rule in enumerate(rules):
        provider = JwtProvider(
            issuer=rule.issuer,
            audiences=list(rule.audiences),
            forward=rule.forward_original_token,
            forward_payload_header=rule.output_payload_to_header,
            payload_in_metadata=JWT_PAYLOAD_METADATA_KEY,
            normalize_payload_in_metadata=JwtProvider.NormalizePayload(
                space_delimited_claims=sorted({*SPACE_DELIMITED_CLAIMS, *rule.space_delimited_claims})
            ),
            claim_to_headers=[
                JwtClaimToHeader(header_name=c.header, claim_name=c.claim) for c in rule.output_claim_to_headers
            ],
            from_headers=[JwtHeader(name=h.name, value_prefix=h.prefix) for h in rule.from_headers],
            from_params=list(rule.from_params),
            from_cookies=list(rule.from_cookies),
        )
        _set_keys(provider, rule, proxy, snapshot)
        providers[f"origins-{index}"] = provider
    return JwtAuthentication(
        providers=providers,
        rules=[RequirementRule(match=RouteMatch(prefix="/"), requires=_requirement(list(providers)))],
        bypass_cors_preflight=True,
    )


def _requirement(provider_names: list[str]) -> JwtRequirement:
    """Istio's: a valid token of any provider, or no token at all (each provider's ``[provider, allow_missing]``
    ANDed; the outer OR lets providers that share a location pass)."""
    optional = [
        JwtRequirement(
            requires_any=JwtRequirementOrList(
                requirements=[JwtRequirement(provider_name=name), JwtRequirement(allow_missing=Empty())]
            )
        )
        for name in provider_names
    ]
    if len(optional) == 1:
        return optional[0]
    either = [JwtRequirement(provider_name=name) for name in provider_names]
    either.append(JwtRequirement(requires_all=JwtRequirementAndList(requirements=optional)))
    return JwtRequirement(requires_any=JwtRequirementOrList(requirements=either))


def build_jwt_authn_filters(proxy: Proxy, snapshot: MeshSnapshot) -> list[HttpFilter]:
    """``[jwt_authn]`` for an inbound HTTP port of ``proxy`` when a RequestAuthentication selects its workload (it
    goes before the authorization filters, Istio's order), else ``[]``."""
    config = build_jwt_authentication(proxy, snapshot)
    return [] if config is None else [http_filter(JWT_AUTHN_FILTER, config)]
