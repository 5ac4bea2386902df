"""VirtualService matches, rewrites, redirects and header operations through real Envoy sidecars in pods, for an
unmodified app (plain ``urllib`` in the productpage pod, no proxy settings) calling ``http://reviews:9080/`` by name.
One world of pods per module (``pods`` in e2e/conftest.py), reset after each test."""

from __future__ import annotations

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
