"""``meshplane-agent sidecar --proxy-config``: the pod's ``proxy.istio.io/config`` fields (from the injector) in the
sidecar's node metadata, where Pilot merges them into the proxy's ProxyConfig (``pilot.model.proxy_config``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from agent.container_sidecar import SidecarError, add_sidecar_arguments, proxy_bootstrap
from envoy_bootstrap.proxy_config import node_of_bootstrap
from meshplane.proxy_environment import PROXY_CONFIG_ANNOTATION_METADATA
from pilot.model.proxy_config import ProxyDefaults, annotation_layer

REQUIRED = ["--workload", "w", "--ip", "10.244.0.5", "--pilot", "10.96.0.20:15010"]


def _parse(tmp_path: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_sidecar_arguments(parser)
    return parser.parse_args([*REQUIRED, "--work-dir", str(tmp_path), *argv])


def test_the_annotation_s_fields_are_node_metadata_pilot_reads(tmp_path: Path) -> None:
    text = json.dumps({"concurrency": 2, "proxyMetadata": {"LOG_FORMAT": "json"}})
    node = node_of_bootstrap(proxy_bootstrap(_parse(tmp_path, "--proxy-config", text)))
    sent = node.metadata.fields[PROXY_CONFIG_ANNOTATION_METADATA].string_value
    assert annotation_layer(sent) == ProxyDefaults(concurrency=2, environment_variables={"LOG_FORMAT": "json"})


def test_without_the_flag_there_is_no_such_metadata(tmp_path: Path) -> None:
    node = node_of_bootstrap(proxy_bootstrap(_parse(tmp_path)))
    assert PROXY_CONFIG_ANNOTATION_METADATA not in node.metadata.fields


@pytest.mark.parametrize("text", ["{", "[1]"], ids=["not-json", "not-object"])
def test_a_bad_flag_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(SidecarError, match="--proxy-config"):
        proxy_bootstrap(_parse(tmp_path, "--proxy-config", text))


@pytest.mark.parametrize(
    "text",
    ['{"concurrency": "2"}', '{"proxyMetadata": {"A": 1}}', "nope", "[]"],
    ids=["str", "int-var", "text", "list"],
)
def test_pilot_ignores_metadata_it_cannot_read(text: str) -> None:
    assert annotation_layer(text) is None
