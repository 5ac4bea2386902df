"""Istio's MeshConfig file: what is implemented is read, everything else is rejected with file:line."""

from __future__ import annotations

import pytest

from pilot.config.mesh_config import MeshConfig, MeshConfigError, parse_mesh_config
from pilot.model import MeshSettings, OutboundTrafficPolicy


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", MeshConfig(settings=MeshSettings())),
        (
            "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n",
            MeshConfig(settings=MeshSettings(outbound_traffic_policy=OutboundTrafficPolicy.REGISTRY_ONLY)),
        ),
        (
            "rootNamespace: mesh-root\ntrustDomain: example.org\nenableAutoMtls: true\n",
            MeshConfig(settings=MeshSettings(), trust_domain="example.org", root_namespace="mesh-root"),
        ),
    ],
    ids=["empty-is-istio-defaults", "registry-only", "names-and-auto-mtls"],
)
def test_accepted(text: str, expected: MeshConfig) -> None:
    assert parse_mesh_config(text, "mesh.yaml") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("defaultConfig:\n  proxyMetadata: {}\n", ["mesh.yaml:1: defaultConfig: not supported by meshplane yet"]),
        (
            "rootNamespace: r\nenableAutoMtls: false\n",
            ["mesh.yaml:2: enableAutoMtls: not supported by meshplane yet: auto mTLS is always on"],
        ),
        (
            "outboundTrafficPolicy:\n  mode: ALLOW_SOME\n",
            ["mesh.yaml:2: outboundTrafficPolicy.mode: "],
        ),
        ("outboundTrafic: {}\n", ["mesh.yaml:1: outboundTrafic: unknown field"]),
        ("a: [\n", ["mesh.yaml:"]),
    ],
    ids=["unsupported-field", "auto-mtls-off", "bad-mode", "typo", "yaml-syntax"],
)
def test_rejected(text: str, expected: list[str]) -> None:
    with pytest.raises(MeshConfigError) as raised:
        parse_mesh_config(text, "mesh.yaml")
    messages = [str(error) for error in raised.value.errors]
    assert len(messages) == len(expected), messages
    for message, start in zip(messages, expected, strict=True):
        assert message.startswith(start), messages
