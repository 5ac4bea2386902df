"""istioctl-style tooling against a live mesh of pods: ``meshplane proxy-status`` and ``proxy-config`` read Pilot's
record of each sidecar (what it was sent and ACKed), as ``istioctl proxy-status`` / ``proxy-config`` do. A captured
sidecar has Istio's listeners: ``virtualOutbound`` on 15001, ``virtualInbound`` on 15006 and one ``0.0.0.0_<port>``
per HTTP service port, with route table ``<port>``. The world is the module's ``pods``."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from e2e.conftest import POD_WORLD_LOOP
from e2e.pod_mesh import REVIEWS_PORT, PodMesh
from e2e.pods import why_pods_cannot_run
from e2e.rules import weighted_reviews

pytestmark = [pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run())), POD_WORLD_LOOP]

REVIEWS_V1_CLUSTER = f"outbound|{REVIEWS_PORT}|v1|reviews.default.svc.cluster.local"


async def meshplane(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "e2e.cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    return process.returncode or 0, output.decode()


def _rows(output: str) -> dict[str, list[str]]:
    """A table's rows by their first column (the header row left out)."""
    return {line.split()[0]: line.split() for line in output.splitlines()[1:] if line.strip()}


async def test_proxy_status_shows_every_sidecar_synced(pods: PodMesh) -> None:
    code, output = await meshplane("proxy-status", "--pilot-monitor", pods.pilot.monitor_address)

    assert code == 0, output
    rows = _rows(output)
    assert set(rows) == {f"{name}.default" for name in pods.pods}, output
    assert all(rows[f"{name}.default"][1] == pods.addresses[name] for name in pods.pods), output  # the pod IPs
    assert all(row[3:7] == ["SYNCED"] * 4 for row in rows.values()), output


async def test_proxy_config_shows_what_the_sidecar_was_sent(pods: PodMesh) -> None:
    await pods.config.apply("reviews-vs", weighted_reviews(v1=100))
    await pods.config.wait_synced()
    monitor = ("--pilot-monitor", pods.pilot.monitor_address)

    clusters = (await meshplane("proxy-config", "cluster", "productpage", *monitor))[1]
    endpoints = (await meshplane("proxy-config", "endpoint", "productpage.default", *monitor))[1]
    listeners = (await meshplane("proxy-config", "listener", "reviews-v1", *monitor))[1]
    routes_json = (await meshplane("proxy-config", "route", "productpage", "-o", "json", *monitor))[1]
    missing = await meshplane("proxy-config", "route", "ratings", *monitor)

    assert _rows(clusters)[REVIEWS_V1_CLUSTER] == [REVIEWS_V1_CLUSTER, "EDS"], clusters
    assert _rows(clusters)["PassthroughCluster"] == ["PassthroughCluster", "ORIGINAL_DST"], clusters
    v1 = f"{pods.addresses['reviews-v1']}:{REVIEWS_PORT}"  # the pod IP, the app's own port
    assert _rows(endpoints)[REVIEWS_V1_CLUSTER] == [REVIEWS_V1_CLUSTER, v1], endpoints
    assert _rows(listeners) == {
        f"0.0.0.0_{REVIEWS_PORT}": [f"0.0.0.0_{REVIEWS_PORT}", f"0.0.0.0:{REVIEWS_PORT}"],
        "virtualInbound": ["virtualInbound", "0.0.0.0:15006"],
        "virtualOutbound": ["virtualOutbound", "0.0.0.0:15001"],
    }, listeners
    assert missing[0] == 1 and "no connected proxy 'ratings'" in missing[1], missing
    [table] = json.loads(routes_json)  # -o json: the RouteConfiguration as Pilot sent it
    assert table["name"] == str(REVIEWS_PORT)
    hosts = {vhost["name"]: vhost for vhost in table["virtual_hosts"]}
    reviews = hosts[f"reviews.default.svc.cluster.local:{REVIEWS_PORT}"]
    assert {"reviews", "reviews.default.svc.cluster.local"} <= set(reviews["domains"])
    assert table["ignore_port_in_host_matching"] is True  # the domains have no port, as Istio's sidecar tables
    assert reviews["routes"][0]["route"]["cluster"] == REVIEWS_V1_CLUSTER
    assert hosts["allow_any"]["routes"][0]["route"]["cluster"] == "PassthroughCluster"  # outboundTrafficPolicy
