"""VirtualService matches, rewrites, redirects and header operations through real Envoy."""

from __future__ import annotations

from e2e.harness import LocalMesh
from e2e.mesh_config import DEMO_CLIENT, DEMO_URL
from e2e.rules import reviews_virtual_service

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


async def test_requests_are_routed_by_header_uri_method_and_query(demo_mesh: LocalMesh) -> None:
    await demo_mesh.apply("reviews-vs", reviews_virtual_service(MATCHES))
    await demo_mesh.wait_synced()
    client = DEMO_CLIENT.name
    base = DEMO_URL.rstrip("/")

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
        response = await demo_mesh.request(client, base + path, method=method, headers=headers)
        assert response.status == 200, (method, path, response.text)
        seen.append(response.version)
    assert seen == [expected for *_, expected in cases]

    post = await demo_mesh.request(client, DEMO_URL, method="POST")
    assert post.request_headers.get("x-routed-by") == "meshplane"


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


async def test_rewrite_redirect_and_direct_response(demo_mesh: LocalMesh) -> None:
    await demo_mesh.apply("reviews-vs", reviews_virtual_service(REWRITES))
    await demo_mesh.wait_synced()
    client, base = DEMO_CLIENT.name, DEMO_URL.rstrip("/")

    rewritten = await demo_mesh.request(client, base + "/old/page")
    assert (rewritten.status, rewritten.version) == (200, "v1")
    assert rewritten.body is not None and rewritten.body["path"] == "/new/page"
    assert rewritten.headers.get("x-rewritten") == "yes"

    session = demo_mesh.client(client)
    redirected = await session.request(base + "/moved", allow_redirects=False)
    assert redirected.status == 308
    assert redirected.headers["location"].endswith("/elsewhere")

    teapot = await demo_mesh.request(client, base + "/teapot")
    assert (teapot.status, teapot.text) == (418, "short and stout")
