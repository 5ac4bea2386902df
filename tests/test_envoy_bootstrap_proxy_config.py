"""The proxy launcher's ProxyConfig: fetched from a real Pilot xDS server (in process, over gRPC) as the node of
the bootstrap it writes, and turned into Envoy's ``--concurrency`` and environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from envoy_bootstrap.bootstrap import bootstrap_to_json, build_sidecar_bootstrap
from envoy_bootstrap.proxy_config import (
    LaunchSettings,
    ProxyConfigError,
    fetch_launch_settings,
    fetch_proxy_config,
    launch_settings,
    node_of_bootstrap,
)
from envoy_bootstrap.runner import sidecar_command
from meshplane.proxyconfig.v1.proxy_config_pb2 import ProxyConfig as ProxyConfigMessage
from pilot.config.parse import parse_config_text
from tests.xds_fakes import bookinfo, serving

PROXY_CONFIGS = """\
apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata: {name: default, namespace: default}
spec:
  concurrency: 0
  environmentVariables: {LEVEL: namespace, NAMESPACE: "yes"}
---
apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata: {name: productpage, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  concurrency: 2
  environmentVariables: {LEVEL: workload}
"""


def _bootstrap(tmp_path: Path, workload: str, address: str, pilot: str) -> Path:
    path = tmp_path / f"{workload}.json"
    bootstrap = build_sidecar_bootstrap(workload=workload, namespace="default", address=address, pilot=pilot)
    path.write_text(bootstrap_to_json(bootstrap))
    return path


async def test_the_launcher_gets_its_workload_s_proxy_config_from_pilot(tmp_path: Path) -> None:
    configs = {**bookinfo(), **{r.meta.key: r for r in parse_config_text(PROXY_CONFIGS, "pc.yaml").resources}}
    async with serving(configs, debounce=0.01) as server:
        pilot = f"127.0.0.1:{server.port}"
        productpage = await fetch_launch_settings(
            pilot, _bootstrap(tmp_path, "productpage-v1", "127.0.0.21", pilot), default_concurrency=1
        )
        reviews = await fetch_launch_settings(
            pilot, _bootstrap(tmp_path, "reviews-v1", "127.0.0.11", pilot), default_concurrency=1
        )
    assert productpage == LaunchSettings(concurrency=2, environment={"LEVEL": "workload", "NAMESPACE": "yes"})
    assert reviews == LaunchSettings(concurrency=0, environment={"LEVEL": "namespace", "NAMESPACE": "yes"})


async def test_without_proxy_configs_the_launcher_keeps_its_default(tmp_path: Path) -> None:
    async with serving(bookinfo(), debounce=0.01) as server:
        pilot = f"127.0.0.1:{server.port}"
        bootstrap = _bootstrap(tmp_path, "reviews-v1", "127.0.0.11", pilot)
        assert await fetch_launch_settings(pilot, bootstrap, default_concurrency=3) == LaunchSettings(concurrency=3)


async def test_no_pilot_is_an_error_not_a_proxy_started_without_its_proxy_config(tmp_path: Path) -> None:
    bootstrap = _bootstrap(tmp_path, "reviews-v1", "127.0.0.11", "127.0.0.1:1")
    with pytest.raises(ProxyConfigError, match=r"no ProxyConfig for sidecar~127\.0\.0\.11~reviews-v1\.default"):
        await fetch_proxy_config("127.0.0.1:1", node_of_bootstrap(bootstrap), timeout=0.5)


def test_concurrency_zero_leaves_envoy_its_default_of_one_worker_per_core() -> None:
    zero = sidecar_command(Path("envoy"), Path("b.json"), concurrency=0, log_level="info")
    two = sidecar_command(Path("envoy"), Path("b.json"), concurrency=2, log_level="info")
    assert "--concurrency" not in zero
    assert two[two.index("--concurrency") + 1] == "2"


def test_the_environment_is_added_over_the_launcher_s() -> None:
    message = ProxyConfigMessage(environment_variables={"A": "proxy", "B": "b"})
    settings = launch_settings(message, default_concurrency=1)
    assert settings.concurrency == 1
    assert settings.process_environment({"A": "launcher", "PATH": "/bin"}) == {"A": "proxy", "B": "b", "PATH": "/bin"}
