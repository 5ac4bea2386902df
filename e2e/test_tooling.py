"""istioctl-style tooling against a live mesh: proxy-status and proxy-config read Pilot's record of each sidecar."""

from __future__ import annotations

import asyncio
import json
import sys

from e2e.harness import LocalMesh
from e2e.rules import weighted_reviews


async def meshplane(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "e2e.cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    return process.returncode or 0, output.decode()


async def test_proxy_status_shows_every_sidecar_synced(demo_mesh: LocalMesh) -> None:
    code, output = await meshplane("proxy-status", "--pilot-monitor", demo_mesh.pilot.monitor_address)

    assert code == 0, output
    rows = {line.split()[0]: line.split() for line in output.splitlines()[1:] if line.strip()}
    assert set(rows) == {f"{w}.default" for w in demo_mesh.workloads}
    assert all(row[3:6] == ["SYNCED", "SYNCED", "SYNCED"] for row in rows.values()), output


async def test_proxy_config_shows_what_the_sidecar_was_sent(demo_mesh: LocalMesh) -> None:
    await demo_mesh.apply("reviews-vs", weighted_reviews(v1=100))
    await demo_mesh.wait_synced()
    monitor = ("--pilot-monitor", demo_mesh.pilot.monitor_address)

    clusters = (await meshplane("proxy-config", "cluster", "productpage", *monitor))[1]
    endpoints = (await meshplane("proxy-config", "endpoint", "productpage.default", *monitor))[1]
    listeners = (await meshplane("proxy-config", "listener", "reviews-v1", *monitor))[1]
    routes_json = (await meshplane("proxy-config", "route", "productpage", "-o", "json", *monitor))[1]
    missing = await meshplane("proxy-config", "route", "ratings", *monitor)

    assert "outbound|9080|v1|reviews.default.svc.cluster.local" in clusters
    v1 = demo_mesh.workloads["reviews-v1"].address
    assert f"outbound|9080|v1|reviews.default.svc.cluster.local  {v1}:9080" in endpoints
    assert f"{v1}:9080" in listeners and f"{v1}:15001" in listeners
    assert missing[0] == 1 and "no connected proxy 'ratings'" in missing[1]
    [table] = json.loads(routes_json)  # -o json: the RouteConfiguration as Pilot sent it
    assert table["name"] == "15001.default"
    vhost = next(v for v in table["virtual_hosts"] if v["name"].startswith("reviews.default.svc.cluster.local:"))
    assert vhost["routes"][0]["route"]["cluster"] == "outbound|9080|v1|reviews.default.svc.cluster.local"
