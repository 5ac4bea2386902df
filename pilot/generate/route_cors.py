"""A VirtualService route's ``corsPolicy`` as the CORS filter's per-route config (Istio's ``TranslateCORSPolicy``).

The HTTP connection managers of sidecars all run ``envoy.filters.http.cors`` (``filter_chains.build_http_filters``,
after fault injection and before the router, as Istio places it); a route with a ``corsPolicy`` carries an
``envoy.extensions.filters.http.cors.v3.CorsPolicy`` under that filter's name in ``typed_per_filter_config`` (the
route's ``cors`` field is deprecated in Envoy). The filter answers a preflight (``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``) from an allowed origin itself, and adds ``Access-Control-Allow-Origin`` (and
``-Expose-Headers``, ``-Allow-Credentials``) to the responses of other requests from allowed origins.
"""

from __future__ import annotations

from envoy.extensions.filters.http.cors.v3.cors_pb2 import CorsPolicy as EnvoyCorsPolicy
from envoy.type.v3.percent_pb2 import FractionalPercent

from pilot.config.types import CorsPolicy
from pilot.generate.route_match import string_matcher

__all__ = ["translate_cors_policy"]


def translate_cors_policy(policy: CorsPolicy) -> EnvoyCorsPolicy:
    """Istio's translation: origins as string matchers (the deprecated ``allowOrigin`` as exact ones), the lists
    joined with ``,``, ``maxAge`` in seconds, the filter enabled for every request, and a preflight from an origin
    that is not allowed forwarded to the app unless ``unmatchedPreflights: IGNORE`` (Envoy then answers it itself,
    without any ``Access-Control-Allow-*`` header)."""
    out = EnvoyCorsPolicy(
        allow_origin_string_match=[m for m in map(string_matcher, policy.allow_origins) if m is not None],
        allow_methods=",".join(policy.allow_methods),
        allow_headers=",".join(policy.allow_headers),
        expose_headers=",".join(policy.expose_headers),
        max_age="" if policy.max_age is None else str(policy.max_age),
    )
    out.filter_enabled.default_value.CopyFrom(FractionalPercent(numerator=100, denominator=FractionalPercent.HUNDRED))
    if policy.allow_credentials is not None:
        out.allow_credentials.value = policy.allow_credentials
    out.forward_not_matching_preflights.value = policy.unmatched_preflights != "IGNORE"
    return out
