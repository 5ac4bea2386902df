"""Pods, end to end: an app with no proxy settings (``urllib`` in the productpage pod) calls ``http://reviews:9080/``;
the name resolves through the pod's DNS agent to the service's VIP, iptables sends the connection to the sidecar's
virtualOutbound (15001), the ``0.0.0.0_9080`` listener's route picks a reviews pod, whose capture hands it to
virtualInbound (15006) and its app. Real Pilot, Envoy, iptables and network namespaces (``e2e.pod_mesh``)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from e2e.pod_mesh import REVIEWS_URL, pod_mesh
from e2e.pods import why_pods_cannot_run
from e2e.rules import JASON_TO_V2, weighted_reviews
from e2e.traffic import binomial_bounds

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

REQUESTS = 200


def versions(responses: list[tuple[int, str]]) -> Counter[str]:
    return Counter(json.loads(body)["version"] if status == 200 else f"HTTP {status}" for status, body in responses)


async def test_an_unmodified_app_gets_the_weighted_split(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, weighted_reviews(v1=80, v2=20)) as mesh:
        responses = mesh.get(REVIEWS_URL, REQUESTS)
    counts = versions(responses)
    low, high = binomial_bounds(REQUESTS, 0.20)
    assert set(counts) == {"v1", "v2"}, counts
    assert low <= counts["v2"] <= high, counts


async def test_a_header_match_routes_the_unmodified_apps_request(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, JASON_TO_V2) as mesh:
        as_jason = mesh.get(REVIEWS_URL, 20, headers={"end-user": "jason"})
        anonymous = mesh.get(REVIEWS_URL, 20)
    assert versions(as_jason) == {"v2": 20}
    assert versions(anonymous) == {"v1": 20}
