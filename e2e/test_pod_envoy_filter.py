"""EnvoyFilter in pods, through real Envoy: a Lua filter inserted before the router on reviews' SIDECAR_INBOUND
port 9080 (Istio's docs pattern, ``envoy.filters.http.lua`` of the Envoy build) adds a response header productpage
sees; a CLUSTER MERGE selecting productpage gives its outbound reviews cluster a circuit breaker, visible in its
Envoy's ``/config_dump``; removing the EnvoyFilters takes both away again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from e2e.pod_mesh import REVIEWS_URL, PodMesh, pod_mesh
from e2e.pods import pod_get, why_pods_cannot_run

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

REVIEWS_CLUSTER = "outbound|9080||reviews.default.svc.cluster.local"
LUA = """\
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: reviews-lua
  namespace: default
spec:
  workloadSelector:
    labels:
      app: reviews
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        portNumber: 9080
        filterChain:
          filter:
            name: "envoy.filters.network.http_connection_manager"
            subFilter:
              name: "envoy.filters.http.router"
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.lua
        typed_config:
          "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
          inlineCode: |
            function envoy_on_response(response_handle)
              response_handle:headers():add("x-envoy-filter", "lua")
            end
"""
CIRCUIT_BREAKER = """\
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: productpage-reviews-cluster
  namespace: default
spec:
  workloadSelector:
    labels:
      app: productpage
  configPatches:
  - applyTo: CLUSTER
    match:
      context: SIDECAR_OUTBOUND
      cluster:
        service: reviews.default.svc.cluster.local
        portNumber: 9080
    patch:
      operation: MERGE
      value:
        connect_timeout: 3s
        circuit_breakers:
          thresholds:
          - max_connections: 77
"""


async def _cluster(mesh: PodMesh, name: str) -> dict[str, object]:
    url = "http://127.0.0.1:15000/config_dump?resource=dynamic_active_clusters"
    [(status, body)] = await asyncio.to_thread(pod_get, mesh.pod("productpage"), url)
    assert status == 200, body
    found = [c["cluster"] for c in json.loads(body)["configs"] if c["cluster"]["name"] == name]
    assert found, f"no cluster {name} in productpage's config_dump"
    cluster = found[0]
    assert isinstance(cluster, dict)
    return cluster


async def test_lua_filter_and_cluster_merge_reach_envoy_and_go_away_with_the_filters(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path) as mesh:
        before = await mesh.request(REVIEWS_URL)
        assert before.status == 200 and "x-envoy-filter" not in before.headers, before

        await mesh.config.apply("40-reviews-lua", LUA)
        await mesh.config.apply("41-productpage-cluster", CIRCUIT_BREAKER)
        configz = await mesh.config.wait_synced()
        assert configz["rejected"] == [], configz["rejected"]
        responses = await mesh.responses(REVIEWS_URL, 4)
        assert [r.status for r in responses] == [200] * 4, responses
        assert [r.headers.get("x-envoy-filter") for r in responses] == ["lua"] * 4, responses
        cluster = await _cluster(mesh, REVIEWS_CLUSTER)
        assert cluster["connect_timeout"] == "3s", cluster
        thresholds = cluster["circuit_breakers"]["thresholds"]  # type: ignore[index]
        assert thresholds[-1]["max_connections"] == 77, thresholds

        await mesh.config.remove("40-reviews-lua")
        await mesh.config.remove("41-productpage-cluster")
        await mesh.config.wait_synced()
        after = await mesh.request(REVIEWS_URL)
        assert after.status == 200 and "x-envoy-filter" not in after.headers, after
        assert (await _cluster(mesh, REVIEWS_CLUSTER))["connect_timeout"] != "3s"
