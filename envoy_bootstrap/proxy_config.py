"""The proxy's effective ProxyConfig (Istio's ProxyConfig kind, MeshConfig ``defaultConfig``), fetched from Pilot
before Envoy starts, and how the launcher applies it.

``fetch_proxy_config(pilot, node)`` opens one ADS stream as the proxy's node (the very node of its bootstrap, so
Pilot resolves the same workload and labels Envoy will present), asks for ``meshplane.proxyconfig.v1.ProxyConfig``,
takes the one resource Pilot answers with and closes the stream. ``launch_settings`` turns it into Envoy's
``--concurrency`` (0: Envoy's default, one worker per core, as Istio's ``concurrency: 0``; unset: the launcher's
own default) and the variables added to Envoy's environment. ProxyConfig is read once per start: as in Istio, a
change applies when the proxy restarts. Pilot unreachable within ``timeout`` is an error: a proxy is never started
with a ProxyConfig silently left out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import grpc
from envoy.config.core.v3.base_pb2 import Node
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from meshplane.names import PROXY_CONFIG_TYPE
from meshplane.proxyconfig.v1.proxy_config_pb2 import ProxyConfig

__all__ = [
    "DEFAULT_TIMEOUT",
    "LaunchSettings",
    "ProxyConfigError",
    "fetch_launch_settings",
    "fetch_proxy_config",
    "launch_settings",
    "node_of_bootstrap",
    "proxy_config_of",
]

DEFAULT_TIMEOUT = 60.0  # a pod can start before Pilot is ready


class ProxyConfigError(RuntimeError):
    """Pilot did not answer with the proxy's ProxyConfig."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LaunchSettings:
    concurrency: int  # Envoy's --concurrency; 0: left to Envoy (one worker per core)
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def process_environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with the ProxyConfig's variables set over it."""
        return {**base, **self.environment}


def launch_settings(config: ProxyConfig, *, default_concurrency: int) -> LaunchSettings:
    concurrency = config.concurrency.value if config.HasField("concurrency") else default_concurrency
    return LaunchSettings(
        concurrency=concurrency, environment=MappingProxyType(dict(sorted(config.environment_variables.items())))
    )


def node_of_bootstrap(bootstrap: Path) -> Node:
    """The ``node`` of a bootstrap file (JSON, as ``envoy_bootstrap`` writes it)."""
    node = Node()
    json_format.ParseDict(json.loads(bootstrap.read_text())["node"], node, ignore_unknown_fields=True)
    return node


def proxy_config_of(response: DiscoveryResponse) -> ProxyConfig:
    """The one ProxyConfig of a response (ProxyConfigError for anything else)."""
    if len(response.resources) != 1 or response.resources[0].type_url != PROXY_CONFIG_TYPE:
        types = [r.type_url for r in response.resources]
        raise ProxyConfigError(f"expected one {PROXY_CONFIG_TYPE}, got {types}")
    config = ProxyConfig()
    try:
        response.resources[0].Unpack(config)
    except DecodeError as exc:
        raise ProxyConfigError(f"ProxyConfig does not parse: {exc}") from exc
    return config


async def _requests(first: DiscoveryRequest, done: asyncio.Event) -> AsyncIterator[DiscoveryRequest]:
    yield first
    await done.wait()


async def fetch_proxy_config(pilot: str, node: Node, *, timeout: float = DEFAULT_TIMEOUT) -> ProxyConfig:
    """The ProxyConfig Pilot (``HOST:PORT``) resolves for ``node``."""
    request = DiscoveryRequest(type_url=PROXY_CONFIG_TYPE)
    request.node.CopyFrom(node)
    done = asyncio.Event()
    try:
        async with grpc.aio.insecure_channel(pilot) as channel:
            call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(
                _requests(request, done), timeout=timeout, wait_for_ready=True
            )
            async for response in call:
                done.set()
                call.cancel()
                return proxy_config_of(response)
    except grpc.aio.AioRpcError as exc:
        raise ProxyConfigError(
            f"Pilot {pilot}: no ProxyConfig for {node.id}: {exc.code().name} {exc.details()}"
        ) from None
    raise ProxyConfigError(f"Pilot {pilot} closed the stream without a ProxyConfig for {node.id}")


async def fetch_launch_settings(
    pilot: str, bootstrap: Path, *, default_concurrency: int, timeout: float = DEFAULT_TIMEOUT
) -> LaunchSettings:
    """The launch settings of the proxy of ``bootstrap`` (its node), from Pilot."""
    config = await fetch_proxy_config(pilot, node_of_bootstrap(bootstrap), timeout=timeout)
    return launch_settings(config, default_concurrency=default_concurrency)
