"""VirtualService matches, rewrites, redirects and header operations through real Envoy sidecars in pods, for an
unmodified app (plain ``urllib`` in the productpage pod, no proxy settings) calling ``http://reviews:9080/`` by name.
One world of pods per module (``pods`` in e2e/conftest.py), reset after each test."""

from __future__ import annotations

import uuid

import pytest

from e2e.conftest import POD_WORLD_LOOP
from e2e.pod_mesh import REVIEWS_URL, PodMesh
from e2e.pods import why_pods_cannot_run
from e2e.rules import JASON_TO_V2, reviews_virtual_service
from e2e.traffic import count_by

pytestmark = [pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run())), POD_WORLD_LOOP]

BASE = REVIEWS_URL.rstrip("/")
MATCHES = """
- name: jason
  match:
  - headers:
      end-user:
        exact: jason
  route:
  - destination: {host: reviews, subset: v2}
- name: api
  match:
  - uri:
      prefix: /api/
  - uri:
      regex: "/v[0-9]+/items"
  route:
  - destination: {host: reviews, subset: v3}
- name: writes
  match:
  - method:
      exact: POST
  - queryParams:
      debug:
        exact: "1"
  route:
  - destination: {host: reviews, subset: v3}
    headers:
      request:
        set:
          x-routed-by: meshplane
- name: default
  route:
  - destination: {host: reviews, subset: v1}
"""


async def test_a_header_match_routes_the_unmodified_apps_request(pods: PodMesh) -> None:
    await pods.config.apply("reviews-vs", JASON_TO_V2)
    await pods.config.wait_synced()

    as_jason = await pods.responses(REVIEWS_URL, 20, headers={"end-user": "jason"})
    anonymous = await pods.responses(REVIEWS_URL, 20)

    assert count_by(as_jason) == {"v2": 20}
    assert count_by(anonymous) == {"v1": 20}


async def test_requests_are_routed_by_header_uri_method_and_query(pods: PodMesh) -> None:
    await pods.config.apply("reviews-vs", reviews_virtual_service(MATCHES))
    await pods.config.wait_synced()
    cases = [
        ("GET", "/", {"end-user": "jason"}, "v2"),
        ("GET", "/", {"end-user": "someone"}, "v1"),
        ("GET", "/api/books", {}, "v3"),
        ("GET", "/v2/items", {}, "v3"),
        ("GET", "/v2/other", {}, "v1"),
        ("POST", "/", {}, "v3"),
        ("GET", "/?debug=1", {}, "v3"),
        ("GET", "/?debug=2", {}, "v1"),
    ]

    seen = []
    for method, path, headers, _ in cases:
        response = await pods.request(BASE + path, method=method, headers=headers)
        assert response.status == 200, (method, path, response.text)
        seen.append(response.version)

    assert seen == [expected for *_, expected in cases]
    post = await pods.request(REVIEWS_URL, method="POST")
    assert post.request_headers.get("x-routed-by") == "meshplane"
    assert post.body is not None and post.body["method"] == "POST"


REWRITES = """
- match:
  - uri:
      prefix: /old/
  rewrite:
    uri: /new/
  headers:
    response:
      set:
        x-rewritten: "yes"
  route:
  - destination: {host: reviews, subset: v1}
- match:
  - uri:
      exact: /moved
  redirect:
    uri: /elsewhere
    redirectCode: 308
- match:
  - uri:
      exact: /teapot
  directResponse:
    status: 418
    body:
      string: short and stout
- route:
  - destination: {host: reviews, subset: v2}
"""


async def test_rewrite_redirect_and_direct_response(pods: PodMesh) -> None:
    await pods.config.apply("reviews-vs", reviews_virtual_service(REWRITES))
    await pods.config.wait_synced()

    rewritten = await pods.request(BASE + "/old/page")
    redirected = await pods.request(BASE + "/moved", follow_redirects=False)
    teapot = await pods.request(BASE + "/teapot")

    assert (rewritten.status, rewritten.version) == (200, "v1")
    assert rewritten.body is not None and rewritten.body["path"] == "/new/page"
    assert rewritten.headers.get("x-rewritten") == "yes"
    assert redirected.status == 308
    assert redirected.headers["location"] == "http://reviews:9080/elsewhere"
    assert (teapot.status, teapot.text) == (418, "short and stout")


CORS = """
- corsPolicy:
    allowOrigins:
    - exact: https://shop.example.com
    - prefix: https://admin.
    allowMethods: [GET, POST]
    allowHeaders: [x-client]
    exposeHeaders: [x-served-by]
    maxAge: 24h
    allowCredentials: true
  route:
  - destination: {host: reviews, subset: v1}
"""


def _preflight(origin: str) -> dict[str, str]:
    return {"origin": origin, "access-control-request-method": "POST", "access-control-request-headers": "x-client"}


async def test_cors_preflight_is_answered_for_allowed_origins_only(pods: PodMesh) -> None:
    """Istio's CORS task: the sidecar answers a preflight from an allowed origin itself with the policy's
    Access-Control-Allow-* headers; one from another origin gets none (and goes on to the app: FORWARD, Istio's
    default for unmatched preflights); a simple request from an allowed origin gets Allow-Origin and Expose."""
    await pods.config.apply("reviews-vs", reviews_virtual_service(CORS))
    await pods.config.wait_synced()
    allowed_path, other_path = f"/cors/{uuid.uuid4().hex}", f"/cors/{uuid.uuid4().hex}"

    allowed = await pods.request(BASE + allowed_path, method="OPTIONS", headers=_preflight("https://shop.example.com"))
    by_prefix = await pods.request(BASE + "/", method="OPTIONS", headers=_preflight("https://admin.example.com"))
    other = await pods.request(BASE + other_path, method="OPTIONS", headers=_preflight("https://evil.example.com"))
    simple = await pods.request(BASE + "/", headers={"origin": "https://shop.example.com"})

    assert allowed.status == 200 and allowed.body is None, "Envoy answered the preflight, not the app"
    assert {k: v for k, v in allowed.headers.items() if k.startswith("access-control-")} == {
        "access-control-allow-origin": "https://shop.example.com",
        "access-control-allow-methods": "GET,POST",
        "access-control-allow-headers": "x-client",
        "access-control-max-age": "86400",
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "x-served-by",  # Envoy adds it to its own answer too
    }
    assert await pods.app_requests("reviews-v1", allowed_path) == 0
    assert by_prefix.headers.get("access-control-allow-origin") == "https://admin.example.com"
    assert (other.status, other.version) == (200, "v1"), "forwarded to the app"
    assert not [k for k in other.headers if k.startswith("access-control-")], other.headers
    assert await pods.app_requests("reviews-v1", other_path) == 1
    assert (simple.status, simple.version) == (200, "v1")
    assert simple.headers.get("access-control-allow-origin") == "https://shop.example.com"
    assert simple.headers.get("access-control-expose-headers") == "x-served-by"
