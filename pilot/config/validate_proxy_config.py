"""Validate a ProxyConfig spec into ``types.ProxyConfig`` (Istio's ``ValidateProxyConfig``, ``pkg/config/validation``).

- ``selector.matchLabels``: Kubernetes label syntax; an empty selector is no selector (the namespace's ProxyConfig,
  or in the root namespace the mesh's), as in Istio.
- ``concurrency``: the number of Envoy worker threads, at least 0 (Istio: "concurrency must be greater than or equal
  to 0"); 0 means one per core of the machine.
- ``environmentVariables``: added to the Envoy process's environment (Istio puts them in the proxy container's
  environment, as ``proxyMetadata``). A name must be a Kubernetes environment variable name (printable ASCII, no
  ``=``); names Istio's agent reads itself (``ISTIO_*``, among them the ``ISTIO_META_*`` node metadata, and the
  agent's own settings: ``meshplane.proxy_environment``) change nothing in meshplane's launcher: not supported by
  meshplane yet.
- ``image.imageType``: ``default`` is the only proxy meshplane runs (the Envoy of its wheel, or of its image on
  Kubernetes); any other (Istio publishes ``debug`` and ``distroless`` builds of its proxy image) is not supported
  by meshplane yet.

Which ProxyConfig applies to a proxy, and how several are merged, is the model's job (``pilot.model.proxy_config``).
"""

from __future__ import annotations

from meshplane.proxy_environment import agent_variable_problem, environment_name_error
from pilot.config.types import ConfigMeta, Labels, ProxyConfig, frozen_labels
from pilot.config.validate_common import INT32_MAX, Fields, selector_labels

__all__ = ["PROXY_CONFIG_FIELDS", "validate_proxy_config"]

PROXY_CONFIG_FIELDS = ("selector", "concurrency", "environmentVariables", "image")
_IMAGE_FIELDS = ("imageType",)


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
