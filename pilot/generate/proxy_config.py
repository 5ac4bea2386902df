"""The proxy's effective ProxyConfig as the message its launcher fetches over ADS before starting Envoy
(``envoy_bootstrap.proxy_config``): one unnamed resource per proxy, like Istio's NDS name table.

Which ProxyConfigs apply, merged by Istio's precedence: ``pilot.model.proxy_config``. The proxy's labels are its
workload's (a gateway without one: its node's ``LABELS``, as Gateways select it); the pod's ``proxy.istio.io/config``
comes as node metadata (``PROXY_CONFIG_ANNOTATION``), as Istio's agent sends the pod's annotations."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from meshplane.proxy_environment import PROXY_CONFIG_ANNOTATION_METADATA
from meshplane.proxyconfig.v1.proxy_config_pb2 import ProxyConfig as ProxyConfigMessage
from pilot.model.gateways import gateway_labels
from pilot.model.proxy_config import ProxyDefaults, annotation_layer, effective_proxy_config
from pilot.model.types import MeshSnapshot, Proxy

__all__ = ["build_proxy_config", "build_scope_proxy_config", "proxy_config_message", "proxy_config_scopes"]


def proxy_config_message(config: ProxyDefaults) -> ProxyConfigMessage:
    message = ProxyConfigMessage(environment_variables=dict(config.environment_variables))
    if config.concurrency is not None:
        message.concurrency.value = config.concurrency
    return message


def build_proxy_config(proxy: Proxy, snapshot: MeshSnapshot) -> list[ProxyConfigMessage]:
    """The proxy's one ProxyConfig (empty: nothing configured, the launcher's defaults)."""
    config = effective_proxy_config(
        snapshot.proxy_configs,
        root_namespace=snapshot.root_namespace,
        namespace=proxy.namespace,
        labels=gateway_labels(proxy),
        mesh_default=snapshot.mesh.proxy_defaults,
        annotation=annotation_layer(proxy.node.metadata.get(PROXY_CONFIG_ANNOTATION_METADATA)),
    )
    return [proxy_config_message(config)]


def proxy_config_scopes(proxy: Proxy) -> list[tuple[Hashable, ...]]:
    """None: a proxy's ProxyConfig is its own (it depends on its labels)."""
    return []


def build_scope_proxy_config(scope: Sequence[Hashable], snapshot: MeshSnapshot) -> list[ProxyConfigMessage]:
    raise ValueError(f"ProxyConfig has no shared scopes: {scope!r}")
