"""Which ProxyConfig applies to a proxy, merged: Istio's ``ProxyConfigs.EffectiveProxyConfig``
(``pilot/pkg/model/proxy_config.go``).

From lowest to highest precedence, each layer overriding what the ones below set, field by field (``concurrency``
when set; ``environmentVariables`` variable by variable, as Istio's proto merge of ``proxyMetadata`` does):

1. MeshConfig ``defaultConfig`` (``ProxyDefaults``, from ``pilot.config.mesh_config``);
2. the root namespace's ProxyConfig without a selector (the mesh's);
3. the proxy's namespace's ProxyConfig without a selector (unless that is the root namespace);
4. the pod's ``proxy.istio.io/config`` annotation (the launcher sends it as node metadata, as Istio's agent sends
   the pod's annotations);
5. the ProxyConfig of the proxy's namespace whose ``selector.matchLabels`` its labels include.

Istio takes the oldest ProxyConfig where a level has several (its docs call that invalid); meshplane has no creation
times across sources, so it takes the first in name order, every time, as for Sidecars (``pilot.model.sidecar_index``).
ProxyConfig is read when a proxy starts (Istio: "changes will require restart of workloads to take effect").
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import structlog

from pilot.config.types import EMPTY_LABELS, Labels, ProxyConfig, frozen_labels, labels_match

__all__ = [
    "NO_PROXY_DEFAULTS",
    "PROXY_CONFIG_KIND",
    "ProxyConfigIndex",
    "ProxyDefaults",
    "annotation_layer",
    "effective_proxy_config",
    "index_proxy_configs",
]

log = structlog.get_logger(__name__)

PROXY_CONFIG_KIND = "ProxyConfig"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyDefaults:
    """The fields of one ProxyConfig layer meshplane applies, and the merged result (``effective_proxy_config``)."""

    concurrency: int | None = None  # None: not set at this layer
    environment_variables: Labels = field(default_factory=lambda: EMPTY_LABELS)

    def under(self, higher: ProxyDefaults | None) -> ProxyDefaults:
        """This layer with ``higher`` merged over it."""
        if higher is None:
            return self
        return ProxyDefaults(
            concurrency=higher.concurrency if higher.concurrency is not None else self.concurrency,
            environment_variables=frozen_labels({**self.environment_variables, **higher.environment_variables}),
        )


NO_PROXY_DEFAULTS = ProxyDefaults()


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyConfigIndex:
    """The ProxyConfigs of a snapshot by the level they apply at."""

    namespace_defaults: Mapping[str, ProxyConfig] = field(default_factory=lambda: MappingProxyType({}))
    selecting: Mapping[str, tuple[ProxyConfig, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # "namespace ns: ProxyConfigs a, b have no selector; a applies"
    conflicts: tuple[str, ...] = ()


def index_proxy_configs(configs: Iterable[ProxyConfig]) -> ProxyConfigIndex:
    """Index ``configs`` (in ConfigKey order: the first one of a level applies)."""
    defaults: dict[str, list[ProxyConfig]] = defaultdict(list)
    selecting: dict[str, list[ProxyConfig]] = defaultdict(list)
    for config in configs:
        level = selecting if config.selector else defaults
        level[config.meta.key.namespace].append(config)
    conflicts = tuple(
        f"namespace {namespace}: ProxyConfigs {', '.join(c.meta.key.name for c in found)} have no selector; "
        f"{found[0].meta.key.name} applies"
        for namespace, found in sorted(defaults.items())
        if len(found) > 1
    )
    return ProxyConfigIndex(
        namespace_defaults=MappingProxyType({ns: found[0] for ns, found in sorted(defaults.items())}),
        selecting=MappingProxyType({ns: tuple(found) for ns, found in sorted(selecting.items())}),
        conflicts=conflicts,
    )


def _layer(config: ProxyConfig | None) -> ProxyDefaults | None:
    if config is None:
        return None
    return ProxyDefaults(concurrency=config.concurrency, environment_variables=config.environment_variables)


def _selecting(index: ProxyConfigIndex, namespace: str, labels: Labels) -> ProxyConfig | None:
    for config in index.selecting.get(namespace, ()):
        selector = config.selector or EMPTY_LABELS
        if labels_match(selector, labels):
            return config
    return None


def effective_proxy_config(
    index: ProxyConfigIndex,
    *,
    root_namespace: str,
    namespace: str,
    labels: Labels,
    mesh_default: ProxyDefaults = NO_PROXY_DEFAULTS,
    annotation: ProxyDefaults | None = None,
) -> ProxyDefaults:
    """The ProxyConfig of a proxy in ``namespace`` with ``labels``: every layer merged by precedence (module doc)."""
    merged = mesh_default.under(_layer(index.namespace_defaults.get(root_namespace)))
    if namespace != root_namespace:
        merged = merged.under(_layer(index.namespace_defaults.get(namespace)))
    workload = (annotation or NO_PROXY_DEFAULTS).under(_layer(_selecting(index, namespace, labels)))
    return merged.under(workload)


def annotation_layer(text: str | None) -> ProxyDefaults | None:
    """The ``proxy.istio.io/config`` layer a launcher sent as node metadata (``PROXY_CONFIG_ANNOTATION``: JSON
    ``{"concurrency": N, "proxyMetadata": {...}}``, the fields the injector validated and passed on). Malformed: no
    layer, with a warning (as Istio ignores an annotation it cannot read here)."""
    if not text:
        return None
    try:
        document = json.loads(text)
        concurrency = document.get("concurrency")
        variables = document.get("proxyMetadata") or {}
        if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)):
            raise ValueError(f"concurrency: expected an integer, got {concurrency!r}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in variables.items()):
            raise ValueError("proxyMetadata: expected a mapping of strings")
    except (ValueError, AttributeError) as exc:
        log.warning("proxy_config_annotation_ignored", error=str(exc))
        return None
    return ProxyDefaults(concurrency=concurrency, environment_variables=frozen_labels(variables))
