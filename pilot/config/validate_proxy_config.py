"""Validate a ProxyConfig spec into ``types.ProxyConfig`` (Istio's ``ValidateProxyConfig``, ``pkg/config/validation``).

- ``selector.matchLabels``: Kubernetes label syntax; an empty selector is no selector (the namespace's ProxyConfig,
  or in the root namespace the mesh's), as in Istio.
- ``concurrency``: the number of Envoy worker threads, at least 0 (Istio: "concurrency must be greater than or equal
  to 0"); 0 means one per core of the machine.
- ``environmentVariables``: added to the Envoy process's environment (Istio puts them in the proxy container's
  environment, as ``proxyMetadata``). A name must be a Kubernetes environment variable name (printable ASCII, no
  ``=``); names Istio's agent reads itself (``ISTIO_*``, among them the ``ISTIO_META_*`` node metadata, and the
  agent's own settings below) change nothing in meshplane's launcher: not supported by meshplane yet.
- ``image.imageType``: ``default`` is the only proxy meshplane runs (the Envoy of its wheel, or of its image on
  Kubernetes); any other (Istio publishes ``debug`` and ``distroless`` builds of its proxy image) is not supported
  by meshplane yet.

Which ProxyConfig applies to a proxy, and how several are merged, is the model's job (``pilot.model.proxy_config``).
"""

from __future__ import annotations

import re

from pilot.config.errors import quote
from pilot.config.types import ConfigMeta, Labels, ProxyConfig, frozen_labels
from pilot.config.validate_common import INT32_MAX, Fields, selector_labels

__all__ = ["PROXY_CONFIG_FIELDS", "agent_variable_problem", "environment_name_error", "validate_proxy_config"]

PROXY_CONFIG_FIELDS = ("selector", "concurrency", "environmentVariables", "image")
_IMAGE_FIELDS = ("imageType",)
_ENV_NAME = re.compile(r"[\x21-\x3c\x3e-\x7e]+")  # Kubernetes: printable ASCII but '=' (and no space)
# Istio's agent reads these from its environment (pilot/cmd/pilot-agent, pkg/istio-agent): in Istio they change what
# the agent does, meshplane's launcher has no such settings
_AGENT_VARIABLES = frozenset(
    {
        "BOOTSTRAP_XDS_AGENT", "CA_ADDR", "CA_ROOT_CA", "DNS_PROXY_ADDR", "EXIT_ON_ZERO_ACTIVE_CONNECTIONS",
        "MINIMUM_DRAIN_DURATION", "OUTPUT_CERTS", "PILOT_CERT_PROVIDER", "PROXY_CONFIG_XDS_AGENT",
        "PROXY_XDS_VIA_AGENT", "XDS_ROOT_CA",
    }
)  # fmt: skip


def environment_name_error(name: str) -> str | None:
    """Why ``name`` cannot be an environment variable of the proxy (None: it can)."""
    if not _ENV_NAME.fullmatch(name):
        return f"invalid environment variable name {quote(name)}: printable ASCII characters other than '=' only"
    return None


def agent_variable_problem(name: str) -> str | None:
    """ "not supported" for a variable Istio's agent interprets (None for one only Envoy's environment sees)."""
    if name.startswith("ISTIO_META_"):
        return (
            f"{name}: not supported by meshplane yet (Istio's agent turns ISTIO_META_* variables into the proxy's "
            "node metadata; meshplane's launcher does not)"
        )
    if name.startswith("ISTIO_") or name in _AGENT_VARIABLES:
        return f"{name}: not supported by meshplane yet (a setting of Istio's agent, which meshplane does not run)"
    return None


def validate_proxy_config(spec: Fields, meta: ConfigMeta) -> ProxyConfig:
    """Check a ProxyConfig spec (opened with ``PROXY_CONFIG_FIELDS``); problems go to ``spec.problems``."""
    _image(spec)
    return ProxyConfig(
        meta=meta,
        selector=selector_labels(spec),
        concurrency=spec.integer("concurrency", minimum=0, maximum=INT32_MAX),
        environment_variables=_environment(spec),
    )


def _environment(spec: Fields) -> Labels:
    variables = spec.string_map("environmentVariables")
    if variables is None:
        return frozen_labels(None)
    for name in variables:
        problem = environment_name_error(name) or agent_variable_problem(name)
        if problem is not None:
            spec.problems.add(spec.at("environmentVariables", name), problem)
    return frozen_labels(variables)


def _image(spec: Fields) -> None:
    image = spec.mapping("image", known=_IMAGE_FIELDS, message="ProxyImage")
    if image is None:
        return
    image_type = image.string("imageType")  # Istio allows any type its hub publishes (default, debug, distroless)
    if image_type not in (None, "default"):
        image.report(
            "imageType",
            f"{image_type} is not supported by meshplane yet (meshplane runs one proxy build, the Envoy of its wheel "
            "or of its image: imageType default only)",
        )
