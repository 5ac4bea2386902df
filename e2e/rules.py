"""Istio rules for the end-to-end scenarios, written as YAML the way a user would write them."""

from __future__ import annotations

import textwrap

__all__ = [
    "ALLOW_PRODUCTPAGE",
    "DENY_MALLORY",
    "JASON_TO_V2",
    "reviews_policy",
    "reviews_virtual_service",
    "weighted_reviews",
]


def reviews_virtual_service(http_routes: str, *, name: str = "reviews") -> str:
    """A VirtualService for ``reviews`` whose ``spec.http`` is ``http_routes`` (YAML list, any indentation)."""
    routes = textwrap.indent(textwrap.dedent(http_routes).strip("\n"), "  ")
    return (
        "apiVersion: networking.istio.io/v1\n"
        "kind: VirtualService\n"
        f"metadata:\n  name: {name}\n  namespace: default\n"
        "spec:\n  hosts:\n  - reviews\n  http:\n"
        f"{routes}\n"
    )


def weighted_reviews(**weights: int) -> str:
    """``weighted_reviews(v1=90, v2=10)``: one route splitting reviews between subsets by weight."""
    destinations = "".join(
        f"  - destination:\n      host: reviews\n      subset: {subset}\n    weight: {weight}\n"
        for subset, weight in weights.items()
    )
    return reviews_virtual_service("- route:\n" + destinations)


def reviews_policy(kind: str, spec: str, *, name: str, api_version: str | None = None) -> str:
    """A policy document selecting the reviews workloads (``app: reviews``) in namespace default: an
    AuthorizationPolicy (security.istio.io) or a Mixer kind (AccessList, RateLimit: mixer.meshplane.io). ``spec``
    is the YAML under ``spec`` after the selector, at any indentation."""
    if api_version is None:
        api_version = "security.istio.io/v1" if kind == "AuthorizationPolicy" else "mixer.meshplane.io/v1"
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return (
        f"apiVersion: {api_version}\nkind: {kind}\n"
        f"metadata:\n  name: {name}\n  namespace: default\n"
        "spec:\n  selector:\n    matchLabels:\n      app: reviews\n"
        f"{body}\n"
    )


DENY_MALLORY = reviews_policy(
    "AuthorizationPolicy",
    """
    action: DENY
    rules:
    - when:
      - key: request.headers[end-user]
        values: ["mallory"]
    """,
    name="deny-mallory",
)
ALLOW_PRODUCTPAGE = reviews_policy(  # only productpage's identity (with Citadel) may call reviews
    "AuthorizationPolicy",
    """
    action: ALLOW
    rules:
    - from:
      - source:
          principals: ["cluster.local/ns/default/sa/bookinfo-productpage"]
    """,
    name="allow-productpage",
)
JASON_TO_V2 = reviews_virtual_service(  # end-user jason to subset v2, everyone else to v1
    """
    - match:
      - headers:
          end-user: {exact: jason}
      route:
      - destination: {host: reviews, subset: v2}
    - route:
      - destination: {host: reviews, subset: v1}
    """
)
